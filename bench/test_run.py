"""Tests of bench/run.py's history and instruction report (no server runs):
python3 -m unittest discover -s bench -p 'test_*.py' (scripts/test runs them)."""

import importlib.util
import os
import tempfile
import unittest

spec = importlib.util.spec_from_file_location("run", os.path.join(os.path.dirname(__file__), "run.py"))
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)

INFO = {"date": "2026-12-07 07:04 UTC", "commit": "abc1234", "dirty": 0}


def results(**counts):
    """Records as measure() leaves them: `W1_floor=8000` is W1's floor row."""
    return [{"workload": k.split("_", 1)[0], "row": k.split("_", 1)[1].replace("_", "-"),
             "instructions_per_req": v} for k, v in counts.items()]


class History(unittest.TestCase):
    def setUp(self):
        self.saved = run.DURATION, run.SERVER_ENV, run.ROWS, run.TARGET_DIR
        run.DURATION, run.SERVER_ENV, run.ROWS, run.TARGET_DIR = 3, {}, ["floor", "axum", "wxgate-1w"], ""
        self.path = os.path.join(tempfile.mkdtemp(), "history.tsv")

    def tearDown(self):
        run.DURATION, run.SERVER_ENV, run.ROWS, run.TARGET_DIR = self.saved

    def test_columns(self):
        cols = run.history_columns()
        self.assertEqual(cols[:7], ["date", "commit", "dirty", "duration", "W1.floor", "W1.axum", "W1.wxgate"])
        self.assertEqual(cols[-2:], ["W8.wxgate", "note"])
        self.assertEqual(len(cols), 4 + 3 * len(run.WORKLOADS) + 1)

    def test_line_written_and_read_back(self):
        line = run.history_line(INFO, results(W1_floor=8198.7, W1_wxgate_1w=35769.8, W1_wxgate_default=1.0,
                                              W6_wxgate_1w=139275.2))
        run.append_history(self.path, line)
        run.append_history(self.path, dict(line, commit="def5678"))
        with open(self.path) as f:
            text = f.read().splitlines()
        self.assertEqual(text[0], "\t".join(run.history_columns()))
        self.assertEqual(len(text), 3)
        fields = text[1].split("\t")
        self.assertEqual(len(fields), len(run.history_columns()))
        self.assertEqual(fields[:7], ["2026-12-07T07:04Z", "abc1234", "0", "3", "8199", "-", "35770"])
        self.assertEqual(fields[-1], "-")
        cols, lines = run.read_history(self.path)
        self.assertEqual(lines[1]["commit"], "def5678")
        self.assertEqual(lines[0]["W6.wxgate"], "139275")
        self.assertEqual(lines[0]["W6.floor"], "-")

    def test_other_layout_rewritten_by_name(self):
        with open(self.path, "w") as f:
            f.write("date\tcommit\tW1.wxgate\tW9.wxgate\tnote\n2026-11-25T11:45Z\td03babd\t32168\t7\tseed\n")
        run.append_history(self.path, run.history_line(INFO, results(W1_wxgate_1w=35770)))
        cols, lines = run.read_history(self.path)
        self.assertEqual(cols[-2:], ["W9.wxgate", "note"])
        self.assertEqual([l["W1.wxgate"] for l in lines], ["32168", "35770"])
        self.assertEqual((lines[0]["dirty"], lines[0]["W9.wxgate"], lines[1]["W9.wxgate"]), ("-", "7", "-"))

    def test_instructions_table_and_targets(self):
        by = {(r["workload"], r["row"]): r for r in results(
            W1_floor=8000, W1_wxgate_1w=11000, W3_floor=12000, W3_wxgate_1w=60000,
            W6_wxgate_1w=100000, W7_wxgate_1w=140000)}
        history = [{"commit": "old0001", "W1.wxgate": "10000", "W3.wxgate": "-"},
                   {"commit": "abc1234", "W1.wxgate": "1", "W3.wxgate": "1"}]
        table = "\n".join(run.instructions_table(by, history, "abc1234"))
        self.assertIn("| W1 | 8,000 |  | 11,000 | 1.38 | +10.0% (10,000 at old0001) |", table)
        self.assertIn("| W3 | 12,000 |  | 60,000 | 5.00 | |", table)
        targets = "\n".join(run.instruction_targets(by))
        self.assertIn("| W1 instructions/req (1w) ≤ 1.5× the floor's | 11,000 = 1.38× 8,000 | met |", targets)
        self.assertIn("| W3 instructions/req (1w) ≤ 55,000 | 60,000 | **missed** |", targets)
        self.assertIn("| W7 instructions/req (1w) ≤ 1.5× W6's | 140,000 = 1.40× 100,000 | met |", targets)
        self.assertNotIn("W4", targets)


if __name__ == "__main__":
    unittest.main()
