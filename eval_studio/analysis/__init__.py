"""The studio's analysis: pure functions over tables of battles and judgments (ratings, agreement, length and style
control, the paper's views, benchmark tables) and what draws them (plots, the HTML report). It reads what the store
holds and is read by the UI and the CLI; it never writes to the store and never imports the UI."""
