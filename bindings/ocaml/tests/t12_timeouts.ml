(* t12_timeouts.ml: issue 21 in the OCaml binding: a read that outlasts NBD.set_timeout raises
   NBD.Error with ETIMEDOUT, one that NBD.interrupt stops raises it with ECANCELED, the handle
   going on in both cases; and NBD.set_reconnect_delay carries a handle over a server killed
   with SIGKILL and started again on the same socket. *)
open Harness

let slow_reads = [ "--filter=delay"; "memory"; "1M"; "rdelay=2" ]

(* A read past the limit fails with ETIMEDOUT; it is abandoned (still in flight, its reply to be
   thrown away) and the handle goes on: writes are not delayed.  The buffer is not zeroed when
   the read is issued, so that any write into it shows. *)
let read_times_out () =
  with_connected
    ~args:[ "--filter=delay"; "memory"; "1M"; "rdelay=500ms" ]
    ~setup:(fun h -> NBD.set_pread_initialize h false)
    (fun h ->
      NBD.set_timeout h 100L;
      Alcotest.(check int64) "get_timeout" 100L (NBD.get_timeout h);
      let buf = Bytes.make 4096 '?' in
      let start = Unix.gettimeofday () in
      check_error ~call:"nbd_pread" Unix.ETIMEDOUT (fun () -> NBD.pread h buf 0L);
      Alcotest.(check bool) "well before the reply" true (Unix.gettimeofday () -. start < 0.4);
      Alcotest.(check int) "abandoned read in flight" 1 (NBD.aio_in_flight h);
      NBD.pwrite h (pattern 4096 2) 8192L;
      NBD.flush h;
      poll_until h (fun () -> NBD.aio_in_flight h = 0);
      Alcotest.(check bytes) "buffer never written" (Bytes.make 4096 '?') buf)

(* NBD.interrupt from another thread: the blocked read raises ECANCELED, which Unix.error has no
   constructor for.  An interrupt reaches only a call in progress, so it is repeated until the
   read has begun and returned. *)
let interrupt_from_another_thread () =
  with_connected ~args:slow_reads (fun h ->
      let result = ref None in
      let reader =
        Thread.create
          (fun () ->
            result :=
              Some
                (match NBD.pread h (Bytes.create 4096) 0L with
                | () -> None
                | exception NBD.Error (_, errno) -> errno))
          ()
      in
      while !result = None do
        NBD.interrupt h;
        Thread.delay 0.005
      done;
      Thread.join reader;
      Alcotest.(check bool) "ECANCELED" true (!result = Some (Some (Unix.EUNKNOWNERR 125)));
      NBD.pwrite h (pattern 512 5) 0L)

(* nbdkit on a socket of ours by socket activation, as with_server starts it: restarting it is
   listening on the same path again and starting a new nbdkit there. *)
let start_file_server path disk =
  (try Unix.unlink path with Unix.Unix_error (Unix.ENOENT, _, _) -> ());
  let listener = listen (Unix.ADDR_UNIX path) Unix.PF_UNIX in
  { pid = spawn_activated listener [ "file"; disk ]; address = Unix_socket path }

let reconnects_after_restart () =
  require "nbdkit";
  with_temp_dir (fun dir ->
      let disk = Filename.concat dir "disk" in
      Unix.close (Unix.openfile disk [ Unix.O_WRONLY; Unix.O_CREAT ] 0o600);
      Unix.truncate disk mib;
      let path = Filename.concat dir "sock" in
      let server = ref (start_file_server path disk) in
      Fun.protect
        ~finally:(fun () -> stop !server)
        (fun () ->
          NBD.with_handle (fun h ->
              NBD.set_reconnect_delay h 5000L;
              Alcotest.(check int64) "get_reconnect_delay" 5000L (NBD.get_reconnect_delay h);
              NBD.connect_unix h path;
              let before = pattern 65536 3 in
              NBD.pwrite h before 0L;
              stop !server;
              server := start_file_server path disk;
              (* The next commands find the connection gone, connect again and are sent again. *)
              let after = pattern 65536 4 in
              NBD.pwrite h after 65536L;
              let back = Bytes.make 131072 '?' in
              NBD.pread h back 0L;
              Alcotest.(check bytes) "written before" before (Bytes.sub back 0 65536);
              Alcotest.(check bytes) "written after" after (Bytes.sub back 65536 65536);
              Alcotest.(check int64) "stats_reconnections" 1L (NBD.stats_reconnections h);
              NBD.shutdown h)))

let tests =
  [
    case "read past the timeout" read_times_out;
    case "interrupt from another thread" interrupt_from_another_thread;
    case "reconnection after a restart" reconnects_after_restart;
  ]
