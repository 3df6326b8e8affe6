"""Bactrian-X Studio: ``python app.py`` (or ``gradio app.py``, or a Hugging Face Space) serves the Gradio app.

Configured from environment variables (see ``eval_studio/settings.py``): GRADIO_SERVER_NAME, GRADIO_SERVER_PORT,
BACTRIAN_DB, BACTRIAN_BASE, BACTRIAN_ADAPTERS_DIR, BACTRIAN_EXTERNAL_MODELS, BACTRIAN_USERS_FILE, ...
"""

import logging

from bactrian.client import EndpointError

from eval_studio.settings import Settings
from eval_studio.ui.app import build_demo, launch_options

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

settings = Settings.from_env()
try:
    demo = build_demo(settings)
except EndpointError as e:  # BACTRIAN_ENGINE_URL is down or lists no models: one clear line, not a traceback
    raise SystemExit(f"error: {e}") from None

if __name__ == "__main__":
    demo.launch(**launch_options(settings))
