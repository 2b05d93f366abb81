(* t03_info.ml: what the handle reports about the server and the export. *)
open Harness

let memory_export () =
  with_connected (fun h ->
      Alcotest.check int64 "size" size_1m (NBD.get_size h);
      Alcotest.(check bool) "read only" false (NBD.is_read_only h);
      Alcotest.(check bool) "can_flush" true (NBD.can_flush h);
      Alcotest.(check bool) "can_fua" true (NBD.can_fua h);
      Alcotest.(check bool) "can_trim" true (NBD.can_trim h);
      Alcotest.(check bool) "can_zero" true (NBD.can_zero h);
      Alcotest.(check bool) "can_fast_zero" true (NBD.can_fast_zero h);
      Alcotest.(check bool) "can_df" true (NBD.can_df h);
      Alcotest.(check bool) "can_multi_conn" true (NBD.can_multi_conn h);
      Alcotest.(check bool) "can_cache" true (NBD.can_cache h);
      Alcotest.(check bool) "rotational" false (NBD.is_rotational h);
      Alcotest.(check string) "protocol" "newstyle-fixed" (NBD.get_protocol h);
      Alcotest.(check bool) "structured replies" true (NBD.get_structured_replies_negotiated h);
      Alcotest.(check bool) "no TLS" false (NBD.get_tls_negotiated h);
      Alcotest.(check bool) "handshake flags" true
        (List.mem NBD.HANDSHAKE_FLAG.FIXED_NEWSTYLE (NBD.get_handshake_flags h));
      let minimum = NBD.get_block_size h NBD.SIZE.MINIMUM in
      let preferred = NBD.get_block_size h NBD.SIZE.PREFERRED in
      let maximum = NBD.get_block_size h NBD.SIZE.MAXIMUM in
      Alcotest.(check bool) "block sizes ordered or unknown" true
        (minimum = 0L || (minimum <= preferred && preferred <= maximum));
      Alcotest.(check string) "connection state" "READY"
        (List.hd (String.split_on_char ':' (NBD.connection_state h)));
      Alcotest.(check int) "nothing in flight" 0 (NBD.aio_in_flight h);
      Alcotest.(check bool) "direction is read" true
        (NBD.aio_get_direction h land Int32.to_int NBD.aio_direction_read <> 0))

let read_only_export () =
  with_connected ~args:[ "-r"; "memory"; "1M" ] (fun h ->
      Alcotest.(check bool) "read only" true (NBD.is_read_only h))

let full_info () =
  with_connected
    ~args:[ "--filter=exportname"; "memory"; "1M"; "exportdesc=fixed:a memory disk" ]
    ~setup:(fun h -> NBD.set_full_info h true)
    (fun h ->
      Alcotest.(check bool) "full info" true (NBD.get_full_info h);
      Alcotest.(check string) "description" "a memory disk" (NBD.get_export_description h);
      Alcotest.(check string) "canonical name" "" (NBD.get_canonical_export_name h))

let meta_contexts () =
  with_connected
    ~setup:(fun h -> NBD.add_meta_context h NBD.context_base_allocation)
    (fun h ->
      Alcotest.(check int) "one requested" 1 (NBD.get_nr_meta_contexts h);
      Alcotest.(check string) "its name" "base:allocation" (NBD.get_meta_context h 0);
      Alcotest.(check bool) "negotiated" true (NBD.can_meta_context h NBD.context_base_allocation))

let tests =
  [
    case "memory export" memory_export;
    case "read-only export" read_only_export;
    case "full info" full_info;
    case "meta contexts" meta_contexts;
  ]
