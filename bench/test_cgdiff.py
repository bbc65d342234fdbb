"""Tests of bench/cgdiff.py's reading of callgrind_annotate's output (no valgrind needed)."""

import importlib.util
import os
import unittest

spec = importlib.util.spec_from_file_location("cgdiff", os.path.join(os.path.dirname(__file__), "cgdiff.py"))
cgdiff = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cgdiff)

# As `callgrind_annotate --auto=no --threshold=100` (valgrind 3.19) prints it, shortened.
ANNOTATE = """\
--------------------------------------------------------------------------------
Ir
--------------------------------------------------------------------------------
157,951,838 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir                   file:function
--------------------------------------------------------------------------------
12,424,274 ( 7.87%)  /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/http-1.5.0/src/uri/path.rs:http::uri::path::PathAndQuery::from_shared [/tmp/dbg/release/wxgate]
 6,677,660 ( 4.23%)  ./string/../sysdeps/x86_64/multiarch/memmove-vec-unaligned-erms.S:__memcpy_avx_unaligned_erms [/usr/lib/x86_64-linux-gnu/libc.so.6]
 4,413,143 ( 2.79%)  crates/gateway/src/http/direct.rs:hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_write [/tmp/dbg/release/wxgate]
 1,000,000 ( 0.63%)  /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hyper-1.12.0/src/proto/h1/dispatch.rs:hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_write [/tmp/dbg/release/wxgate]
   500,000 ( 0.32%)  /rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/ptr/mod.rs:core::ptr::drop_in_place<http::request::Parts>
"""


class Reading(unittest.TestCase):
    def test_each_function_line_is_counted_and_the_total_is_not(self):
        counts = cgdiff.self_counts(ANNOTATE)
        self.assertEqual(len(counts), 5)
        self.assertEqual(sum(counts.values()), 12_424_274 + 6_677_660 + 4_413_143 + 1_000_000 + 500_000)
        self.assertEqual(counts[("crates/gateway/src/http/direct.rs",
                                 "hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_write")], 4_413_143)

    def test_inlined_code_is_one_function_and_two_crates(self):
        counts = cgdiff.self_counts(ANNOTATE)
        by_function = cgdiff.grouped(counts, "function")
        self.assertEqual(by_function["hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_write"], 5_413_143)
        by_crate = cgdiff.grouped(counts, "crate")
        self.assertEqual(by_crate, {"http": 12_424_274, "libc": 6_677_660, "wxgate-gateway": 4_413_143,
                                    "hyper": 1_000_000, "std:core": 500_000})

    def test_a_diff_is_per_request_and_largest_first(self):
        a = cgdiff.Counter({"f": 1000, "g": 400})
        b = cgdiff.Counter({"f": 3000, "h": 100})
        rows = cgdiff.diff(a, 10, b, 20)
        self.assertEqual([r[3] for r in rows], ["f", "g", "h"])
        self.assertEqual(rows[0][:3], (50.0, 100.0, 150.0))
        self.assertEqual(rows[1][:3], (-40.0, 40.0, 0.0))
        self.assertEqual(rows[2][:3], (5.0, 0.0, 5.0))


if __name__ == "__main__":
    unittest.main()
