(* test_nbd.ml: runs the OCaml binding's tests, numbered as the Rust binding's. *)
let () =
  Random.self_init ();
  Alcotest.run "nbd-ocaml"
    [
      ("01-lifecycle", T01_lifecycle.tests);
      ("02-connect", T02_connect.tests);
      ("03-info", T03_info.tests);
      ("04-io", T04_io.tests);
      ("05-aio", T05_aio.tests);
      ("06-block-status", T06_block_status.tests);
      ("07-opt", T07_opt.tests);
      ("08-debug", T08_debug.tests);
      ("09-errors", T09_errors.tests);
      ("10-lifetimes", T10_lifetimes.tests);
      ("11-concurrent-writer", T11_writer.tests);
      ("12-timeouts", T12_timeouts.tests);
    ]
