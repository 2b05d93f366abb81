(* t11_writer.ml: the concurrent writer: the ready-made one (start_concurrent_writer), one written
   in OCaml (set_concurrent_writer with a writing thread), and failures of either kind. *)
open Harness

let check_many_writes h =
  let n = 64 and len = 65536 in
  let pending = ref n in
  for i = 0 to n - 1 do
    ignore
      (NBD.aio_pwrite h
         (NBD.Buffer.of_bytes (pattern len i))
         (Int64.of_int (i * len))
         ~completion:(fun error ->
           Alcotest.(check int) "write ok" 0 !error;
           decr pending;
           1))
  done;
  poll_until h (fun () -> !pending = 0);
  for i = 0 to n - 1 do
    let buf = Bytes.create len in
    NBD.pread h buf (Int64.of_int (i * len));
    Alcotest.(check bytes) "block" (pattern len i) buf
  done

let ready_made () =
  with_connected ~args:[ "memory"; "8M" ] (fun h ->
      NBD.start_concurrent_writer h;
      check_many_writes h;
      check_error ~call:"nbd_start_concurrent_writer" Unix.EINVAL (fun () ->
          NBD.start_concurrent_writer h))

let ready_made_before_connecting () =
  with_server [ "memory"; "8M" ] (fun server ->
      NBD.with_handle (fun h ->
          NBD.start_concurrent_writer h;
          NBD.connect_unix h (socket_path server);
          check_many_writes h))

(* An OCaml writer: the callback queues, a thread writes to the socket. *)
type queue = { lock : Mutex.t; nonempty : Condition.t; items : bytes Queue.t; mutable stop : bool }

let write_all fd b =
  let off = ref 0 in
  while !off < Bytes.length b do
    match Unix.write fd b !off (Bytes.length b - !off) with
    | n -> off := !off + n
    | exception Unix.Unix_error ((Unix.EAGAIN | Unix.EWOULDBLOCK), _, _) ->
        ignore (Unix.select [] [ fd ] [] (-1.))
  done

let rec drain fd q =
  Mutex.lock q.lock;
  while Queue.is_empty q.items && not q.stop do
    Condition.wait q.nonempty q.lock
  done;
  match Queue.take_opt q.items with
  | None -> Mutex.unlock q.lock
  | Some b ->
      Mutex.unlock q.lock;
      write_all fd b;
      drain fd q

let ocaml_writer () =
  with_connected ~args:[ "memory"; "8M" ] (fun h ->
      let fd = NBD.aio_get_fd h in
      let q =
        { lock = Mutex.create (); nonempty = Condition.create (); items = Queue.create ();
          stop = false }
      in
      let thread = Thread.create (drain fd) q in
      let before = NBD.callbacks_held () in
      NBD.set_concurrent_writer h (fun buf ->
          Mutex.lock q.lock;
          Queue.add buf q.items;
          Condition.signal q.nonempty;
          Mutex.unlock q.lock;
          0);
      Alcotest.(check int) "writer held" (before + 1) (NBD.callbacks_held ());
      Fun.protect
        ~finally:(fun () ->
          Mutex.lock q.lock;
          q.stop <- true;
          Condition.signal q.nonempty;
          Mutex.unlock q.lock;
          Thread.join thread)
        (fun () -> check_many_writes h))

exception Queue_full

(* A writer callback that raises: the send fails with the Unix_error's errno, and the call
   raises the writer's own exception. *)
let writer_raises () =
  with_connected (fun h ->
      NBD.set_concurrent_writer h (fun _ -> raise (Unix.Unix_error (Unix.EPIPE, "write", "")));
      (match NBD.pwrite h (Bytes.make 512 'a') 0L with
      | () -> Alcotest.fail "the write succeeded"
      | exception Unix.Unix_error (Unix.EPIPE, _, _) -> ());
      Alcotest.(check bool) "connection lost" true (NBD.aio_is_dead h);
      check_error Unix.EINVAL (fun () -> NBD.set_concurrent_writer h (fun _ -> raise Queue_full)))

(* A failure in the writing thread, reported with concurrent_writer_error from another thread,
   completes the commands in flight with its errno. *)
let writer_thread_error () =
  with_connected (fun h ->
      NBD.set_concurrent_writer h (fun _ -> 0);
      let seen = ref (-1) in
      ignore
        (NBD.aio_pread h (NBD.Buffer.alloc 512) 0L ~completion:(fun error -> seen := !error; 1));
      let eio = NBD.errno_of_unix_error Unix.EIO in
      Thread.join (Thread.create (fun () -> NBD.concurrent_writer_error h eio) ());
      check_error Unix.EINVAL (fun () -> NBD.concurrent_writer_error h 0);
      (try poll_until h (fun () -> !seen >= 0) with NBD.Error _ -> ());
      Alcotest.(check int) "command failed with the writer's errno" eio !seen;
      Alcotest.(check bool) "dead" true (NBD.aio_is_dead h))

let tests =
  [
    case "ready-made writer" ready_made;
    case "ready-made writer before connecting" ready_made_before_connecting;
    case "OCaml writer thread" ocaml_writer;
    case "writer callback raises" writer_raises;
    case "writer thread error" writer_thread_error;
  ]
