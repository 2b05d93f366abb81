(* t04_io.ml: synchronous reads, writes, zeroes, trims, flushes and caching, data checked. *)
open Harness

let read h off len =
  let buf = Bytes.make len '?' in
  NBD.pread h buf (Int64.of_int off);
  buf

let write_and_read () =
  with_connected (fun h ->
      let data = pattern 65536 1 in
      NBD.pwrite h data 4096L;
      Alcotest.(check bytes) "read back" data (read h 4096 65536);
      NBD.pwrite ~flags:[ NBD.CMD_FLAG.FUA ] h (pattern 512 9) 0L;
      Alcotest.(check bytes) "after FUA write" (pattern 512 9) (read h 0 512);
      Alcotest.(check bytes) "untouched" (Bytes.make 1024 '\000') (read h 100_000 1024))

let zero_trim_flush_cache () =
  with_connected (fun h ->
      NBD.pwrite h (pattern 16384 3) 0L;
      NBD.zero h 4096L 4096L;
      let got = read h 0 16384 in
      Alcotest.(check bytes) "zeroed range" (Bytes.make 4096 '\000') (Bytes.sub got 4096 4096);
      Alcotest.(check bytes) "before it"
        (Bytes.sub (pattern 16384 3) 0 4096) (Bytes.sub got 0 4096);
      NBD.zero ~flags:[ NBD.CMD_FLAG.NO_HOLE; NBD.CMD_FLAG.FUA ] h 4096L 8192L;
      Alcotest.(check bytes) "zeroed with flags" (Bytes.make 4096 '\000') (read h 8192 4096);
      NBD.trim h 4096L 12288L;
      (* The memory plugin reads trimmed ranges back as zeroes. *)
      Alcotest.(check bytes) "trimmed" (Bytes.make 4096 '\000') (read h 12288 4096);
      NBD.flush h;
      NBD.cache h 65536L 0L)

let pread_structured () =
  with_connected (fun h ->
      let data = pattern 32768 5 in
      NBD.pwrite h data 8192L;
      let buf = Bytes.make 32768 '?' in
      let seen = ref 0 in
      NBD.pread_structured h buf 8192L (fun sub off status _error ->
          let pos = Int64.to_int off - 8192 in
          let status = Int32.of_int status in
          Alcotest.(check bool) "status" true (status = NBD.read_data || status = NBD.read_hole);
          Alcotest.(check bytes) "chunk" (Bytes.sub data pos (Bytes.length sub)) sub;
          seen := !seen + Bytes.length sub;
          0);
      Alcotest.(check int) "whole range seen" 32768 !seen;
      Alcotest.(check bytes) "buffer" data buf)

(* Zero-length requests are refused before they reach the server (strict mode's default). *)
let empty_buffers () =
  with_connected (fun h ->
      check_error ~call:"nbd_pwrite" Unix.EINVAL (fun () -> NBD.pwrite h Bytes.empty 0L);
      check_error ~call:"nbd_pread" Unix.EINVAL (fun () -> NBD.pread h Bytes.empty 0L))

let tests =
  [
    case "write and read" write_and_read;
    case "zero, trim, flush, cache" zero_trim_flush_cache;
    case "pread_structured" pread_structured;
    case "empty buffers" empty_buffers;
  ]
