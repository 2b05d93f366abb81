(* t10_lifetimes.ml: every OCaml callback and aio buffer the C library holds is released exactly
   once, on every path: command retired, call failed, replaced, handle closed with commands in
   flight.  Counted by NBD.callbacks_held and by Gc.finalise on the functions themselves. *)
open Harness

(* Fresh callbacks whose collection is counted in collected.  Each captures result, so it is a
   heap closure (Gc.finalise refuses static ones). *)
let track collected f =
  Gc.finalise (fun _ -> incr collected) f;
  f

let completion collected result = track collected (fun (_ : int ref) -> result)
let extent collected result = track collected (fun _ _ _ (_ : int ref) -> result)
let debug collected result = track collected (fun _ _ -> result)

let settle () =
  Gc.full_major ();
  Gc.full_major ()

let retired_by_callback () =
  with_connected (fun h ->
      let before = NBD.callbacks_held () in
      let collected = ref 0 in
      ignore (NBD.aio_flush h ~completion:(completion collected 1));
      Alcotest.(check int) "held while in flight" (before + 1) (NBD.callbacks_held ());
      poll_until h (fun () -> NBD.aio_in_flight h = 0);
      Alcotest.(check int) "released when retired" before (NBD.callbacks_held ());
      settle ();
      Alcotest.(check int) "collected" 1 !collected)

(* A completion returning 0 leaves the command to aio_command_completed; as in libnbd, the
   command keeps its callback (and the buffer) until it is retired there. *)
let retired_by_command_completed () =
  with_connected (fun h ->
      let before = NBD.callbacks_held () in
      let collected = ref 0 in
      let cookie =
        NBD.aio_pwrite h (NBD.Buffer.alloc 4096) 0L ~completion:(completion collected 0)
      in
      Alcotest.(check int) "held while in flight" (before + 1) (NBD.callbacks_held ());
      poll_until h (fun () -> NBD.aio_in_flight h = 0);
      Alcotest.(check int) "held until retired" (before + 1) (NBD.callbacks_held ());
      Alcotest.(check bool) "retired" true (NBD.aio_command_completed h cookie);
      Alcotest.(check int) "released when retired" before (NBD.callbacks_held ());
      settle ();
      Alcotest.(check int) "collected" 1 !collected)

let failed_call () =
  NBD.with_handle (fun h ->
      let before = NBD.callbacks_held () in
      let collected = ref 0 in
      check_error Unix.ENOTCONN (fun () ->
          NBD.aio_pread h (NBD.Buffer.alloc 512) 0L ~completion:(completion collected 1));
      check_error Unix.ENOTCONN (fun () ->
          NBD.block_status h 512L 0L (extent collected 0));
      Alcotest.(check int) "released at once" before (NBD.callbacks_held ());
      settle ();
      Alcotest.(check int) "both collected" 2 !collected)

(* A buffer nobody else references stays alive (and filled) until its command retires. *)
let buffer_kept_alive () =
  with_connected (fun h ->
      NBD.pwrite h (pattern 8192 4) 0L;
      let collected = ref 0 and result = ref None in
      let start () =
        let buf = NBD.Buffer.alloc 8192 in
        Gc.finalise (fun _ -> incr collected) buf;
        ignore
          (NBD.aio_pread h buf 0L ~completion:(fun _ ->
               result := Some (NBD.Buffer.to_bytes buf);
               1))
      in
      start ();
      settle ();
      Alcotest.(check int) "alive while in flight" 0 !collected;
      poll_until h (fun () -> !result <> None);
      Alcotest.(check (option bytes)) "filled" (Some (pattern 8192 4)) !result;
      settle ();
      Alcotest.(check int) "collected after" 1 !collected)

let buffer_without_completion () =
  with_connected (fun h ->
      let before = NBD.callbacks_held () in
      let cookie = NBD.aio_pread h (NBD.Buffer.alloc 512) 0L in
      Alcotest.(check int) "buffer held" (before + 1) (NBD.callbacks_held ());
      poll_until h (fun () -> NBD.aio_command_completed h cookie);
      Alcotest.(check int) "released" before (NBD.callbacks_held ()))

let closed_with_commands_in_flight () =
  let before = NBD.callbacks_held () in
  let collected = ref 0 in
  with_connected ~setup:(fun h -> NBD.add_meta_context h NBD.context_base_allocation) (fun h ->
      for i = 0 to 7 do
        ignore (NBD.aio_pread h (NBD.Buffer.alloc 65536) (Int64.of_int (i * 65536))
                  ~completion:(completion collected 1))
      done;
      ignore
        (NBD.aio_block_status h 4096L 0L (extent collected 0)
           ~completion:(completion collected 1));
      Alcotest.(check int) "held" (before + 10) (NBD.callbacks_held ()));
  Alcotest.(check int) "released by close" before (NBD.callbacks_held ());
  settle ();
  Alcotest.(check int) "all collected" 10 !collected

let persistent_callbacks () =
  let before = NBD.callbacks_held () in
  let collected = ref 0 in
  NBD.with_handle (fun h ->
      NBD.set_debug_callback h (debug collected 0);
      NBD.set_debug_callback h (fun _ _ -> 0);
      Alcotest.(check int) "one held" (before + 1) (NBD.callbacks_held ()));
  Alcotest.(check int) "none held after close" before (NBD.callbacks_held ());
  settle ();
  Alcotest.(check int) "replaced one collected" 1 !collected

let tests =
  [
    case "retired by the callback" retired_by_callback;
    case "retired by aio_command_completed" retired_by_command_completed;
    case "failed call" failed_call;
    case "buffer kept alive" buffer_kept_alive;
    case "buffer without completion" buffer_without_completion;
    case "closed with commands in flight" closed_with_commands_in_flight;
    case "persistent callbacks" persistent_callbacks;
  ]
