(* t01_lifecycle.ml: creating, configuring, closing and finalising handles. *)
open Harness

let create_and_close () =
  let h = NBD.create () in
  Alcotest.(check bool) "created" true (NBD.aio_is_created h);
  NBD.close h;
  NBD.close h;
  Alcotest.check_raises "use after close" (NBD.Closed "nbd_get_size") (fun () ->
      ignore (NBD.get_size h))

let with_handle_closes_on_exception () =
  let saved = ref None in
  (try NBD.with_handle (fun h -> saved := Some h; failwith "boom") with Failure _ -> ());
  match !saved with
  | None -> Alcotest.fail "with_handle did not run"
  | Some h ->
      Alcotest.check_raises "closed" (NBD.Closed "nbd_get_debug") (fun () ->
          ignore (NBD.get_debug h))

let settings_round_trip () =
  NBD.with_handle (fun h ->
      NBD.set_handle_name h "ocaml-test";
      Alcotest.(check string) "handle name" "ocaml-test" (NBD.get_handle_name h);
      NBD.set_export_name h "disk";
      Alcotest.(check string) "export name" "disk" (NBD.get_export_name h);
      NBD.set_tls h NBD.TLS.ALLOW;
      Alcotest.(check bool) "tls" true (NBD.get_tls h = NBD.TLS.ALLOW);
      NBD.set_strict_mode h [ NBD.STRICT.BOUNDS; NBD.STRICT.COMMANDS ];
      Alcotest.(check bool) "strict, in declaration order" true
        (NBD.get_strict_mode h = [ NBD.STRICT.COMMANDS; NBD.STRICT.BOUNDS ]);
      NBD.set_handshake_flags h [];
      Alcotest.(check bool) "no handshake flags" true (NBD.get_handshake_flags h = []);
      NBD.set_handshake_flags h NBD.HANDSHAKE_FLAG.mask;
      Alcotest.(check bool) "all handshake flags" true
        (NBD.get_handshake_flags h = NBD.HANDSHAKE_FLAG.mask);
      ignore (NBD.set_private_data h 42);
      Alcotest.(check int) "private data" 42 (NBD.get_private_data h);
      NBD.set_opt_mode h true;
      Alcotest.(check bool) "opt mode" true (NBD.get_opt_mode h);
      NBD.set_pread_initialize h false;
      Alcotest.(check bool) "pread initialize" false (NBD.get_pread_initialize h))

let library_identity () =
  NBD.with_handle (fun h ->
      Alcotest.(check string) "package" "nbdpp" (NBD.get_package_name h);
      let v = NBD.get_version h in
      Alcotest.(check string) "ABI level first" "1.24." (String.sub v 0 5);
      Alcotest.(check bool) "uri support" true (NBD.supports_uri h);
      Alcotest.(check string) "no extra version" "" (NBD.get_version_extra h);
      Alcotest.(check bool) "vsock support" true (NBD.supports_vsock h);
      ignore (NBD.supports_tls h))

(* Calls of libnbd 1.16-1.22: uint64 results, and an extent64 callback taking an extent array. *)
let libnbd_1_16_calls () =
  NBD.with_handle (fun h ->
      Alcotest.(check int64) "bytes sent" 0L (NBD.stats_bytes_sent h);
      Alcotest.(check int64) "chunks received" 0L (NBD.stats_chunks_received h);
      NBD.set_socket_activation_name h "sock1";
      Alcotest.(check string) "socket name" "sock1" (NBD.get_socket_activation_name h);
      NBD.set_request_meta_context h false;
      Alcotest.(check bool) "meta context request" false (NBD.get_request_meta_context h);
      let f (_ : string) (_ : int64) (entries : NBD.extent array) (_ : int ref) =
        Array.length entries
      in
      match NBD.block_status_64 h 512L 0L f with
      | () -> Alcotest.fail "block_status_64 on a new handle succeeded"
      | exception NBD.Error (_, _) -> ())

(* libnbd's OCaml types: int32 constants, int64 vsock arguments refused outside uint32_t before
   anything reaches the C library (the handle stays created). *)
let libnbd_ocaml_types () =
  NBD.with_handle (fun h ->
      Alcotest.(check int32) "read_hole" 2l NBD.read_hole;
      Alcotest.(check int32) "state_zero" 2l NBD.state_zero;
      Alcotest.check_raises "cid below 0"
        (Invalid_argument "nbd_connect_vsock: cid out of range") (fun () ->
          NBD.connect_vsock h (-1L) 10809L);
      Alcotest.check_raises "port over 32 bits"
        (Invalid_argument "nbd_aio_connect_vsock: port out of range") (fun () ->
          NBD.aio_connect_vsock h 2L 0x1_0000_0000L);
      Alcotest.(check bool) "still created" true (NBD.aio_is_created h))

(* Unreachable handles are closed by the garbage collector, and the callbacks they hold are
   released with them. *)
let finaliser_closes () =
  let before = NBD.callbacks_held () in
  let make () =
    let h = NBD.create () in
    NBD.set_debug_callback h (fun _ _ -> 0)
  in
  for _ = 1 to 50 do make () done;
  Alcotest.(check int) "held while reachable or not yet collected" (before + 50)
    (NBD.callbacks_held ());
  Gc.full_major ();
  Gc.full_major ();
  Alcotest.(check int) "released by finalisers" before (NBD.callbacks_held ())

let tests =
  [
    case "create and close" create_and_close;
    case "with_handle closes on exception" with_handle_closes_on_exception;
    case "settings round trip" settings_round_trip;
    case "library identity" library_identity;
    case "libnbd 1.16 calls" libnbd_1_16_calls;
    case "libnbd-ocaml types" libnbd_ocaml_types;
    case "finaliser closes" finaliser_closes;
  ]
