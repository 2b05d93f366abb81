(* t09_errors.ml: how failures map to NBD.Error (message and errno) and NBD.Closed. *)
open Harness

let wrong_state () =
  NBD.with_handle (fun h ->
      check_error ~call:"nbd_pread" Unix.ENOTCONN (fun () -> NBD.pread h (Bytes.create 512) 0L));
  with_connected (fun h ->
      check_error ~call:"nbd_connect_uri" Unix.EINVAL (fun () ->
          NBD.connect_uri h "nbd+unix:///?socket=/nonexistent");
      check_error ~call:"nbd_set_tls" Unix.EINVAL (fun () -> NBD.set_tls h NBD.TLS.REQUIRE))

let invalid_arguments () =
  NBD.with_handle (fun h ->
      check_error ~call:"nbd_set_tls" Unix.EINVAL (fun () -> NBD.set_tls h (NBD.TLS.UNKNOWN 99)));
  with_connected ~args:[ "memory"; "128M" ] (fun h ->
      check_error ~call:"nbd_pread" Unix.EINVAL (fun () ->
          NBD.pread ~flags:[ NBD.CMD_FLAG.UNKNOWN 0x100000 ] h (Bytes.create 512) 0L);
      check_error ~call:"nbd_pread" Unix.ERANGE (fun () ->
          NBD.pread h (Bytes.create ((64 * mib) + 1)) 0L);
      check_error ~call:"nbd_pread" Unix.EINVAL (fun () ->
          NBD.pread h (Bytes.create 512) (Int64.of_int (128 * mib))))

(* The error filter fails every read with EIO; writes still work. *)
let failing_reads =
  nbdkit_command [ "--filter=error"; "memory"; "1M"; "error-pread=EIO"; "error-pread-rate=100%" ]

let server_error () =
  require "nbdkit";
  NBD.with_handle (fun h ->
      NBD.connect_command h failing_reads;
      NBD.pwrite h (pattern 512 1) 0L;
      check_error ~call:"nbd_pread" Unix.EIO (fun () -> NBD.pread h (Bytes.create 512) 0L);
      Alcotest.(check bool) "still connected" true (NBD.aio_is_ready h))

let server_error_async () =
  require "nbdkit";
  NBD.with_handle (fun h ->
      NBD.connect_command h failing_reads;
      let seen = ref (-1) in
      let cookie =
        NBD.aio_pread h (NBD.Buffer.alloc 512) 0L ~completion:(fun error -> seen := !error; 0)
      in
      poll_until h (fun () -> !seen >= 0);
      Alcotest.(check int) "errno given to the completion" (NBD.errno_of_unix_error Unix.EIO) !seen;
      check_error ~call:"nbd_aio_command_completed" Unix.EIO (fun () ->
          NBD.aio_command_completed h cookie))

let completion_overrides () =
  with_connected (fun h ->
      let cookie =
        NBD.aio_flush h ~completion:(fun error ->
            error := NBD.errno_of_unix_error Unix.EPERM;
            -1)
      in
      poll_until h (fun () -> NBD.aio_in_flight h = 0);
      check_error Unix.EPERM (fun () -> NBD.aio_command_completed h cookie))

let closed () =
  let h = NBD.create () in
  NBD.close h;
  Alcotest.check_raises "closed" (NBD.Closed "nbd_set_export_name") (fun () ->
      NBD.set_export_name h "x")

let tests =
  [
    case "wrong state" wrong_state;
    case "invalid arguments" invalid_arguments;
    case "server error (error filter)" server_error;
    case "server error, aio" server_error_async;
    case "completion overrides the result" completion_overrides;
    case "closed handle" closed;
  ]
