(* installed.ml: the program of the installed-package test (run.sh installed).  Built outside the
   source tree by a dune project that says only (libraries nbdpp), against a `cmake --install`
   prefix found through OCAMLPATH; run under nbdkit --run with the server's URI and the prefix.
   It writes and reads back, and checks that the libnbd.so.0 this process loaded is nbdpp's, from
   the prefix. *)

let fail fmt = Printf.ksprintf (fun s -> prerr_endline ("installed: " ^ s); exit 1) fmt

(* The file mapped for libnbd.so.0, from /proc/self/maps: the symlink's target,
   libnbd.so.0.0.0 for ours. *)
let loaded_libnbd () =
  let ic = open_in "/proc/self/maps" in
  let is_libnbd path =
    let base = Filename.basename path and soname = "libnbd.so.0" in
    String.length base >= String.length soname
    && String.sub base 0 (String.length soname) = soname
  in
  let rec scan () =
    match input_line ic with
    | exception End_of_file -> None
    | line -> (
        match String.rindex_opt line ' ' with
        | Some i ->
            let path = String.sub line (i + 1) (String.length line - i - 1) in
            if is_libnbd path then Some path else scan ()
        | None -> scan ())
  in
  let r = scan () in
  close_in ic;
  r

let () =
  let uri = Sys.argv.(1) and libdir = Sys.argv.(2) in
  NBD.with_handle (fun h ->
      NBD.connect_uri h uri;
      let data = Bytes.of_string "written through an installed nbdpp" in
      NBD.pwrite h data 4096L ~flags:[ NBD.CMD_FLAG.FUA ];
      let back = Bytes.make (Bytes.length data) '?' in
      NBD.pread h back 4096L;
      if back <> data then fail "read back %S, wrote %S" (Bytes.to_string back)
          (Bytes.to_string data);
      let name = NBD.get_package_name h in
      if name <> "nbdpp" then fail "the loaded library is %s, not nbdpp" name;
      match loaded_libnbd () with
      | None -> fail "no libnbd.so.0 in /proc/self/maps"
      | Some path ->
          if Filename.dirname path <> libdir then
            fail "loaded %s, not the one in %s" path libdir;
          Printf.printf "ok: %s %s from %s, read back %d bytes\n" name (NBD.get_version h) path
            (Bytes.length back))
