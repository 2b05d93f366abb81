(* t06_block_status.ml: extents of base:allocation, synchronous and asynchronous. *)
open Harness

let with_allocation f =
  with_connected ~setup:(fun h -> NBD.add_meta_context h NBD.context_base_allocation) (fun h ->
      NBD.pwrite h (pattern 65536 2) 0L;
      f h)

(* (offset, [(length, flags)]) per context; the entries come as an int64 array. *)
let collect results ctx off entries _error =
  let rec pairs i =
    if i + 1 >= Array.length entries then []
    else (Int64.to_int entries.(i), Int64.to_int entries.(i + 1)) :: pairs (i + 2)
  in
  results := (ctx, off, pairs 0) :: !results;
  0

let extents () =
  with_allocation (fun h ->
      let results = ref [] in
      NBD.block_status h size_1m 0L (collect results);
      match !results with
      | [ (ctx, off, extents) ] ->
          Alcotest.(check string) "context" NBD.context_base_allocation ctx;
          Alcotest.check int64 "offset" 0L off;
          let total = List.fold_left (fun acc (len, _) -> acc + len) 0 extents in
          Alcotest.(check bool) "covers some of the range" true (total > 0);
          let first_len, first_flags = List.hd extents in
          let hole = Int32.to_int NBD.state_hole in
          Alcotest.(check int) "written data first" 0 (first_flags land hole);
          Alcotest.(check bool) "data extent no longer than written" true (first_len <= 65536);
          Alcotest.(check bool) "a hole later" true
            (List.exists (fun (_, flags) -> flags land Int32.to_int NBD.state_hole <> 0) extents)
      | l -> Alcotest.failf "%d contexts answered" (List.length l))

let aio_req_one () =
  with_allocation (fun h ->
      let results = ref [] in
      let status = ref (-1) in
      let _cookie =
        NBD.aio_block_status h size_1m 0L (collect results) ~flags:[ NBD.CMD_FLAG.REQ_ONE ]
          ~completion:(fun error -> status := !error; 1)
      in
      poll_until h (fun () -> !status >= 0);
      Alcotest.(check int) "no error" 0 !status;
      match !results with
      | [ (_, _, [ _ ]) ] -> ()
      | _ -> Alcotest.fail "expected one extent")

let tests =
  [
    case "extents" extents;
    case "aio with REQ_ONE" aio_req_one;
  ]
