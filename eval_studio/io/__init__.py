"""Import pairs and question sets from files; export votes, judgments, conversations and pairs."""

from eval_studio.io.exports import FORMATS, TABLES, collect, export
from eval_studio.io.imports import (
    import_pairs_file,
    import_question_file,
    read_pairs,
    read_questions,
)

__all__ = ["FORMATS", "TABLES", "collect", "export", "import_pairs_file", "import_question_file", "read_pairs", "read_questions"]
