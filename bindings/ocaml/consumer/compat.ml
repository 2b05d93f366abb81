(* compat.ml: a program written for libnbd's own OCaml binding (findlib package nbd, module NBD),
   in the style of its examples.  run.sh compat builds this file unchanged twice: against
   Debian's libnbd-ocaml-dev with (libraries nbd) and against the installed nbdpp with
   (libraries nbdpp).  Usage: compat URI (nbdkit --run gives the URI of a 1M memory disk). *)

open Printf

let size_1m = 1048576L

let () =
  let uri = Sys.argv.(1) in
  let nbd = NBD.create () in
  NBD.set_tls nbd NBD.TLS.ALLOW;
  NBD.add_meta_context nbd NBD.context_base_allocation;
  NBD.connect_uri nbd uri;
  printf "package: %s %s\n" (NBD.get_package_name nbd) (NBD.get_version nbd);
  printf "tls negotiated: %b\n" (NBD.get_tls_negotiated nbd);
  let size = NBD.get_size nbd in
  assert (size = size_1m);

  (* Synchronous write (FUA when the server has it) and read back. *)
  let data = Bytes.make 65536 'x' in
  let flags = if NBD.can_fua nbd then [ NBD.CMD_FLAG.FUA ] else [] in
  NBD.pwrite nbd ~flags data 0L;
  let buf = Bytes.create 65536 in
  NBD.pread nbd buf 0L;
  assert (buf = data);

  (* Block status: the extents come as an int64 array of (length, flags) pairs. *)
  let extents = ref [] in
  NBD.block_status nbd size 0L (fun meta _offset entries _err ->
      if meta = NBD.context_base_allocation then
        for i = 0 to (Array.length entries / 2) - 1 do
          extents := (entries.(2 * i), entries.(2 * i + 1)) :: !extents
        done;
      0);
  let extents = List.rev !extents in
  let hole = Int64.of_int32 NBD.state_hole in
  (match extents with
   | (length, flags) :: _ ->
       assert (Int64.logand flags hole = 0L);
       assert (length > 0L && length <= 65536L)
   | [] -> failwith "no extents");
  assert (List.exists (fun (_, flags) -> Int64.logand flags hole <> 0L) extents);
  printf "extents: %d\n" (List.length extents);

  (* Asynchronous read into a Buffer.t, retired by its completion callback. *)
  let abuf = NBD.Buffer.alloc 4096 in
  let completed = ref false in
  let _cookie : NBD.cookie =
    NBD.aio_pread nbd abuf 0L
      ~completion:(fun err ->
        if !err = 0 then completed := true;
        1)
  in
  while not !completed do
    ignore (NBD.poll nbd (-1))
  done;
  assert (NBD.Buffer.to_bytes abuf = Bytes.sub data 0 4096);

  (* Asynchronous write, retired with its cookie. *)
  let wbuf = NBD.Buffer.of_bytes (Bytes.make 4096 'y') in
  let cookie = NBD.aio_pwrite nbd wbuf 8192L in
  while not (NBD.aio_command_completed nbd cookie) do
    ignore (NBD.poll nbd (-1))
  done;
  assert (NBD.Buffer.size wbuf = 4096);

  (* Constants are int32; connect_vsock takes its CID and port as int64. *)
  let dir : int32 = NBD.aio_direction_read in
  assert (Int32.logand dir NBD.aio_direction_both <> 0l);
  let _vsock : NBD.t -> int64 -> int64 -> unit = NBD.connect_vsock in

  (* A failed call raises NBD.Error with the message and the errno. *)
  (try
     NBD.pread nbd (Bytes.create 512) size;
     failwith "read past the end succeeded"
   with NBD.Error (msg, errno) ->
     printf "error: %s (%s)\n" msg
       (match errno with Some e -> Unix.error_message e | None -> "no errno"));

  NBD.shutdown nbd;
  NBD.close nbd;
  printf "compat: ok\n"
