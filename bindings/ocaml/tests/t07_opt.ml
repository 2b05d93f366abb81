(* t07_opt.ml: option mode: listing exports and contexts, info, go, abort. *)
open Harness

(* nbdkit lists exactly the exports a and b. *)
let two_exports =
  [ "--filter=exportname"; "memory"; "1M"; "exportname=a"; "exportname=b";
    "exportname-list=explicit" ]

let with_negotiating f =
  with_server two_exports (fun server ->
      NBD.with_handle (fun h ->
          NBD.set_opt_mode h true;
          NBD.connect_unix h (socket_path server);
          Alcotest.(check bool) "negotiating" true (NBD.aio_is_negotiating h);
          f h))

let list_info_go () =
  with_negotiating (fun h ->
      let names = ref [] in
      let n = NBD.opt_list h (fun name _description -> names := name :: !names; 0) in
      Alcotest.(check int) "count" 2 n;
      Alcotest.(check (list string)) "names" [ "a"; "b" ] (List.sort compare !names);
      NBD.set_export_name h "b";
      NBD.opt_info h;
      Alcotest.check int64 "size from info" size_1m (NBD.get_size h);
      NBD.add_meta_context h NBD.context_base_allocation;
      let contexts = ref [] in
      let m = NBD.opt_list_meta_context h (fun name -> contexts := name :: !contexts; 0) in
      Alcotest.(check int) "one context" 1 m;
      Alcotest.(check (list string)) "context" [ NBD.context_base_allocation ] !contexts;
      NBD.opt_go h;
      Alcotest.(check bool) "ready" true (NBD.aio_is_ready h);
      Alcotest.(check string) "export" "b" (NBD.get_export_name h))

let aio_list () =
  with_negotiating (fun h ->
      let names = ref [] and result = ref (-1) in
      NBD.aio_opt_list h
        (fun name _ -> names := name :: !names; 0)
        ~completion:(fun error -> result := !error; 1);
      poll_until h (fun () -> !result >= 0);
      Alcotest.(check int) "no error" 0 !result;
      Alcotest.(check int) "listed" 2 (List.length !names);
      let went = ref (-1) in
      NBD.set_export_name h "a";
      NBD.aio_opt_go h ~completion:(fun error -> went := !error; 1);
      poll_until h (fun () -> !went >= 0);
      Alcotest.(check bool) "ready" true (NBD.aio_is_ready h))

let abort () =
  with_negotiating (fun h ->
      NBD.opt_abort h;
      Alcotest.(check bool) "closed" true (NBD.aio_is_closed h || NBD.aio_is_dead h))

let tests =
  [
    case "list, info, go" list_info_go;
    case "aio list and go" aio_list;
    case "abort" abort;
  ]
