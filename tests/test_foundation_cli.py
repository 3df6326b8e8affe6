"""The `bactrian` command line: exit codes and messages for good and bad input."""

import json
import os
import subprocess
import sys


def run(*args, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BACTRIAN_HOME": os.environ.get("BACTRIAN_TEST_HOME", "/nonexistent-bactrian-home")}
    return subprocess.run([sys.executable, "-m", "bactrian.cli", *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_chat_one_shot_with_adapter(tiny_base, tiny_adapters):
    r = run("chat", "--base", str(tiny_base), "--adapters-dir", str(tiny_adapters["root"]), "--adapter", "alpha", "--temperature", "0", "--max-new-tokens", "5", "Hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout and "error" not in r.stderr.lower()


def test_chat_bad_input_exits_nonzero_with_message(tiny_base, tiny_adapters):
    common = ["chat", "--base", str(tiny_base), "--adapters-dir", str(tiny_adapters["root"])]
    cases = [
        (common + ["--adapter", "nope", "Hi"], "unknown adapter 'nope'"),
        (common + ["   "], "empty"),
        (common + ["--temperature", "-1", "Hi"], "temperature"),
        (common + ["word " * 5000], "characters"),
        (["chat", "--base", "no-such-model", "Hi"], "unknown base model"),
    ]
    for argv, fragment in cases:
        r = run(*argv)
        assert r.returncode != 0 and fragment in r.stderr, (argv[:3], r.stderr[-500:])


def test_interactive_chat_reads_stdin(tiny_base, tiny_adapters):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "bactrian.cli", "chat", "--base", str(tiny_base), "--adapters-dir", str(tiny_adapters["root"]), "--adapter", "beta", "--max-new-tokens", "3"],
        input="Hello\n/reset\nAgain\n\n", capture_output=True, text=True, timeout=300, env=env,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("> ") >= 3


def test_models_lists_adapters_and_problems(tiny_base, tiny_adapters, tmp_path):
    bad = tmp_path / "adapters" / "broken"
    bad.mkdir(parents=True)
    (bad / "adapter_config.json").write_text("{oops")
    r = run("models", "--base", str(tiny_base), "--adapters-dir", str(tiny_adapters["root"]), "--adapters-dir", str(tmp_path / "adapters"), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"alpha", "beta"} <= {a["name"] for a in out["adapters"]}
    assert any("broken" in p and "not valid JSON" in p for p in out["problems"])
    assert {b["name"] for b in out["bases"]} >= {"gemma-3-270m", "smollm2-135m-instruct"}
