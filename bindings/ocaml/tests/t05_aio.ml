(* t05_aio.ml: asynchronous commands with Buffer.t, completion callbacks and cookies, and the
   runtime lock released while a call blocks. *)
open Harness

let write_then_read () =
  with_connected (fun h ->
      let data = pattern 131072 11 in
      let completed = ref [] in
      let cookie =
        NBD.aio_pwrite h (NBD.Buffer.of_bytes data) 0L ~completion:(fun error ->
            completed := !error :: !completed;
            1)
      in
      Alcotest.(check bool) "cookie" true (cookie > 0L);
      poll_until h (fun () -> NBD.aio_in_flight h = 0);
      Alcotest.(check (list int)) "completed once, no error" [ 0 ] !completed;
      (* Retired by the callback: nothing left to peek at. *)
      check_error Unix.EINVAL (fun () -> NBD.aio_peek_command_completed h);
      let buf = NBD.Buffer.alloc 131072 in
      let cookie = NBD.aio_pread h buf 0L in
      poll_until h (fun () -> NBD.aio_command_completed h cookie);
      Alcotest.(check bytes) "read back" data (NBD.Buffer.to_bytes buf))

let many_in_flight () =
  with_connected (fun h ->
      let n = 32 and len = 16384 in
      let done_count = ref 0 in
      let cookies =
        List.init n (fun i ->
            NBD.aio_pwrite h
              (NBD.Buffer.of_bytes (pattern len i))
              (Int64.of_int (i * len))
              ~completion:(fun _ -> incr done_count; 0))
      in
      poll_until h (fun () -> !done_count = n);
      List.iter
        (fun c -> Alcotest.(check bool) "completed" true (NBD.aio_command_completed h c))
        cookies;
      let flush = NBD.aio_flush h in
      poll_until h (fun () -> NBD.aio_command_completed h flush);
      List.iteri
        (fun i _ ->
          let buf = Bytes.create len in
          NBD.pread h buf (Int64.of_int (i * len));
          Alcotest.(check bytes) "block" (pattern len i) buf)
        cookies)

let peek_completed () =
  with_connected (fun h ->
      let cookie = NBD.aio_zero h 4096L 0L in
      poll_until h (fun () -> NBD.aio_peek_command_completed h <> 0L);
      Alcotest.check int64 "peeked" cookie (NBD.aio_peek_command_completed h);
      Alcotest.(check bool) "retired" true (NBD.aio_command_completed h cookie))

(* While one thread waits in NBD.poll another must run: here the other thread is the only one
   that can end the wait, by killing the server.  Without the runtime lock released the poll
   would run into its timeout first. *)
let other_threads_run_during_a_call () =
  with_server [ "memory"; "1M" ] (fun server ->
      NBD.with_handle (fun h ->
          NBD.connect_unix h (socket_path server);
          let killer = Thread.create (fun () -> Unix.kill server.pid Sys.sigkill) () in
          let start = Unix.gettimeofday () in
          (try ignore (NBD.poll h 20_000) with NBD.Error _ -> ());
          let elapsed = Unix.gettimeofday () -. start in
          Thread.join killer;
          Alcotest.(check bool) "woken by the other thread" true (elapsed < 10.)))

let tests =
  [
    case "write then read" write_then_read;
    case "many in flight" many_in_flight;
    case "peek completed" peek_completed;
    case "other threads run during a call" other_threads_run_during_a_call;
  ]
