(* t11_writer.ml: the concurrent writer: the ready-made one (start_concurrent_writer), an OCaml
   thread serving NBD.Writer_channel, an OCaml writer callback, and failures of each kind. *)
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

(* ---- An OCaml thread serving the writer through NBD.Writer_channel. *)

module W = NBD.Writer_channel

(* A thread whose result [await] reads back, failing after 30 s instead of hanging when the
   thread never ends. *)
type 'a running = { thread : Thread.t; done_r : Unix.file_descr; done_w : Unix.file_descr;
                    result : ('a, exn) result option ref }

let spawn f =
  let done_r, done_w = Unix.pipe ~cloexec:true () in
  let result = ref None in
  let thread =
    Thread.create
      (fun () ->
        result := Some (try Ok (f ()) with e -> Error e);
        ignore (Unix.write_substring done_w "x" 0 1))
      ()
  in
  { thread; done_r; done_w; result }

let await t =
  (match Unix.select [ t.done_r ] [] [] 30. with
  | [], _, _ -> Alcotest.fail "the writer thread did not end"
  | _ -> ());
  Thread.join t.thread;
  Unix.close t.done_r;
  Unix.close t.done_w;
  match !(t.result) with Some (Ok v) -> v | Some (Error e) -> raise e | None -> assert false

(* Completion callbacks that record each command's error. *)
let recorder () =
  let errors = ref [] in
  (errors, fun error -> errors := !error :: !errors; 1)

let complete_all h = poll_until h (fun () -> NBD.aio_in_flight h = 0)

let application_thread () =
  with_connected (fun h ->
      let w = W.create h in
      (* The thread has only the channel: closing the handle ends it. *)
      let writer = spawn (fun () -> W.run w) in
      let data = pattern 65536 3 in
      NBD.pwrite h data 4096L;
      let back = Bytes.create 65536 in
      NBD.pread h back 4096L;
      Alcotest.(check bytes) "read back" data back;
      NBD.close h;
      await writer;
      Alcotest.(check bool) "closed" true (W.is_closed w))

(* recv and send in a loop of the test's own, as an application would write it. *)
let serve w =
  let rec loop sent largest =
    match W.recv w with
    | None -> (sent, largest)
    | Some b ->
        W.send w b;
        loop (sent + Bytes.length b) (max largest (Bytes.length b))
  in
  loop 0 0

let mixed_requests () =
  let slot = 131072 and slots = 64 in
  with_connected ~args:[ "memory"; "8M" ] (fun h ->
      let w = W.create h in
      let writer = spawn (fun () -> serve w) in
      let disk = Bytes.make (slot * slots) '\000' in
      let state = ref 1 in
      let below n =
        state := (!state * 1103515245 + 12345) land 0x3fffffff;
        (!state lsr 8) mod n
      in
      let errors, record = recorder () in
      let issued = ref 0 in
      for round = 0 to 11 do
        (* Changes to distinct slots, then reads of the changed ranges and a flush. *)
        let changed = ref [] in
        for s = 0 to slots - 1 do
          if below 3 = 0 then begin
            let offset = (s * slot) + (below (slot / 512) * 512) in
            let len = 512 * min 64 (1 + (below ((s + 1) * slot - offset) / 512)) in
            let at = Int64.of_int offset and n = Int64.of_int len in
            (match below 4 with
            | 0 ->
                ignore (NBD.aio_zero h n at ~completion:record);
                Bytes.fill disk offset len '\000'
            | 1 ->
                ignore (NBD.aio_trim h n at ~completion:record);
                Bytes.fill disk offset len '\000'
            | _ ->
                let data = pattern len (offset + round) in
                Bytes.blit data 0 disk offset len;
                ignore (NBD.aio_pwrite h (NBD.Buffer.of_bytes data) at ~completion:record));
            changed := (offset, len) :: !changed
          end
        done;
        complete_all h;
        let reads =
          List.map
            (fun (offset, len) ->
              let buf = NBD.Buffer.alloc len in
              ignore (NBD.aio_pread h buf (Int64.of_int offset) ~completion:record);
              (offset, len, buf))
            !changed
        in
        ignore (NBD.aio_flush h ~completion:record);
        complete_all h;
        List.iter
          (fun (offset, len, buf) ->
            Alcotest.(check string)
              (Printf.sprintf "round %d at %d" round offset)
              (Bytes.sub_string disk offset len) (NBD.Buffer.to_string buf))
          reads;
        issued := !issued + (2 * List.length !changed) + 1
      done;
      Alcotest.(check bool) "hundreds of requests" true (!issued >= 300);
      Alcotest.(check (list int)) "every request succeeded" (List.init !issued (fun _ -> 0)) !errors;
      NBD.close h;
      ignore (await writer))

let megabytes_in_one_send () =
  let chunk = 262144 in
  with_connected ~args:[ "memory"; "16M" ] (fun h ->
      let w = W.create h in
      (* 8 MiB queued before the thread takes any: its first send is far larger than the
         socket's buffer, so the non-blocking socket fills and the send must wait. *)
      let errors, record = recorder () in
      for i = 0 to 31 do
        let data = NBD.Buffer.of_bytes (pattern chunk i) in
        ignore (NBD.aio_pwrite h data (Int64.of_int (i * chunk)) ~completion:record)
      done;
      let writer = spawn (fun () -> serve w) in
      complete_all h;
      Alcotest.(check (list int)) "writes" (List.init 32 (fun _ -> 0)) !errors;
      for i = 0 to 31 do
        let back = Bytes.create chunk in
        NBD.pread h back (Int64.of_int (i * chunk));
        Alcotest.(check bytes) "block" (pattern chunk i) back
      done;
      NBD.close h;
      let _, largest = await writer in
      Alcotest.(check bool)
        (Printf.sprintf "first send of %d bytes" largest)
        true (largest >= 32 * chunk))

let send_failure_reaches_every_command () =
  with_connected (fun h ->
      let w = W.create h in
      let errors, record = recorder () in
      for i = 0 to 49 do
        let at = Int64.of_int (i * 4096) in
        match i mod 3 with
        | 0 -> ignore (NBD.aio_pread h (NBD.Buffer.alloc 4096) at ~completion:record)
        | 1 -> ignore (NBD.aio_pwrite h (NBD.Buffer.alloc 4096) at ~completion:record)
        | _ -> ignore (NBD.aio_flush h ~completion:record)
      done;
      (* The thread takes the 50 requests and, as if sending had failed, reports EIO. *)
      let writer =
        spawn (fun () ->
            let taken = W.recv w in
            check_error ~call:"nbd_concurrent_writer_error" Unix.EINVAL (fun () ->
                W.fail w (Unix.EUNKNOWNERR 0));
            W.fail w Unix.EIO;
            W.fail w Unix.EPIPE;
            (* only the first error counts *)
            Option.map Bytes.length taken)
      in
      let taken = await writer in
      Alcotest.(check bool) "requests taken" true (Option.get taken > 50 * 28);
      check_error Unix.EIO (fun () -> complete_all h);
      let eio = NBD.errno_of_unix_error Unix.EIO in
      Alcotest.(check (list int)) "every command failed with EIO" (List.init 50 (fun _ -> eio))
        !errors;
      Alcotest.(check bool) "dead" true (NBD.aio_is_dead h);
      NBD.close h;
      W.fail w Unix.EIO;
      Alcotest.(check (option bytes)) "recv after close" None (W.recv w))

let close_while_in_recv () =
  with_connected (fun h ->
      let w = W.create h in
      let writer = spawn (fun () -> serve w) in
      NBD.pwrite h (Bytes.make 4096 'x') 0L;
      (* Answered, so sent: the thread waits in recv for more. *)
      NBD.close h;
      let sent, _ = await writer in
      Alcotest.(check bool) "request sent" true (sent >= 4096 + 28))

let close_while_blocked_in_send () =
  (* Reads of 1 MiB whose replies nobody takes stall every nbdkit thread (16) in its reply, so
     the server stops reading and the 16 MiB of writes after them cannot all be sent. *)
  with_connected ~args:[ "memory"; "64M" ] (fun h ->
      let w = W.create h in
      for i = 0 to 31 do
        ignore (NBD.aio_pread h (NBD.Buffer.alloc mib) (Int64.of_int (i * mib)))
      done;
      for i = 0 to 15 do
        ignore (NBD.aio_pwrite h (NBD.Buffer.of_bytes (pattern mib i)) (Int64.of_int (i * mib)))
      done;
      let taken = Event.new_channel () in
      let writer =
        spawn (fun () ->
            let b = Option.get (W.recv w) in
            Event.sync (Event.send taken (Bytes.length b));
            let sent =
              match W.send w b with
              | () -> None
              | exception Unix.Unix_error (e, _, _) -> Some e
            in
            (sent, W.is_closed w, W.recv w))
      in
      Alcotest.(check bool) "16 MiB to send" true (Event.sync (Event.receive taken) > 16 * mib);
      NBD.close h;
      let sent, closed, next = await writer in
      Alcotest.(check bool) "send failed with EPIPE" true (sent = Some Unix.EPIPE);
      Alcotest.(check bool) "closed" true closed;
      Alcotest.(check (option bytes)) "recv after close" None next)

(* The pitfall: a thread that keeps the handle, joined before the handle is closed, would wait
   for ever.  Here the thread closes the handle itself, which is what ends its writer. *)
let thread_keeping_the_handle () =
  with_connected (fun h ->
      let w = W.create h in
      let go = Event.new_channel () in
      let writer =
        spawn (fun () ->
            Event.sync (Event.receive go);
            let before = W.is_closed w in
            NBD.close h;
            (before, W.recv w))
      in
      Event.sync (Event.send go ());
      let open_before, next = await writer in
      Alcotest.(check bool) "open until the thread closed it" false open_before;
      Alcotest.(check (option bytes)) "then recv ends" None next)

let states () =
  with_server [ "memory"; "1M" ] (fun server ->
      NBD.with_handle (fun h ->
          check_error ~call:"nbd_aio_get_fd" Unix.EINVAL (fun () -> W.create h);
          NBD.set_opt_mode h true;
          NBD.connect_unix h (socket_path server);
          check_error ~call:"nbd_set_concurrent_writer" Unix.EINVAL (fun () -> W.create h);
          NBD.opt_go h;
          let w = W.create h in
          let writer = spawn (fun () -> W.run w) in
          check_error Unix.EINVAL (fun () -> W.create h);
          check_error Unix.EINVAL (fun () -> NBD.start_concurrent_writer h);
          NBD.pwrite h (Bytes.make 512 'c') 0L;
          let back = Bytes.create 512 in
          NBD.pread h back 0L;
          Alcotest.(check bytes) "read back" (Bytes.make 512 'c') back;
          NBD.shutdown h;
          check_error Unix.EINVAL (fun () -> W.create h);
          NBD.close h;
          await writer;
          match W.create h with
          | _ -> Alcotest.fail "a closed handle gave a channel"
          | exception NBD.Closed _ -> ()));
  with_connected (fun h ->
      NBD.start_concurrent_writer h;
      check_error Unix.EINVAL (fun () -> W.create h))

let while_connecting () =
  with_server [ "memory"; "1M" ] (fun server ->
      NBD.with_handle (fun h ->
          NBD.aio_connect_unix h (socket_path server);
          Alcotest.(check bool) "connecting" true (NBD.aio_is_connecting h);
          (* The rest of the handshake goes through the thread. *)
          let w = W.create h in
          let writer = spawn (fun () -> W.run w) in
          poll_until h (fun () -> not (NBD.aio_is_connecting h));
          Alcotest.(check bool) "ready" true (NBD.aio_is_ready h);
          NBD.pwrite h (pattern 8192 5) 8192L;
          let back = Bytes.create 8192 in
          NBD.pread h back 8192L;
          Alcotest.(check bytes) "read back" (pattern 8192 5) back;
          NBD.close h;
          await writer))

let lost_channel () =
  with_connected (fun h ->
      let make () = ignore (Sys.opaque_identity (W.create h)) in
      make ();
      Gc.full_major ();
      (* Nothing can send the requests any more: the connection ends instead of hanging. *)
      check_error ~call:"nbd_pwrite" Unix.ESHUTDOWN (fun () -> NBD.pwrite h (Bytes.make 512 'z') 0L);
      Alcotest.(check bool) "dead" true (NBD.aio_is_dead h))

(* A writer callback of OCaml's own is held until the handle is closed, and only then freed.
   (Serving it takes socket code in OCaml; Writer_channel is the way without.) *)
let ocaml_writer_held () =
  with_connected (fun h ->
      let before = NBD.callbacks_held () in
      let queued = ref 0 in
      NBD.set_concurrent_writer h (fun buf -> queued := !queued + Bytes.length buf; 0);
      Alcotest.(check int) "writer held" (before + 1) (NBD.callbacks_held ());
      ignore (NBD.aio_flush h);
      Alcotest.(check int) "flush request queued" 28 !queued;
      NBD.close h;
      Alcotest.(check int) "writer freed" (before - 0) (NBD.callbacks_held ()))

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
    case "OCaml writer callback held until close" ocaml_writer_held;
    case "Writer_channel.run in a thread" application_thread;
    case "Writer_channel: hundreds of mixed requests" mixed_requests;
    case "Writer_channel: megabytes in one send" megabytes_in_one_send;
    case "Writer_channel: a send failure reaches every command" send_failure_reaches_every_command;
    case "Writer_channel: close while the thread waits in recv" close_while_in_recv;
    case "Writer_channel: close while the thread is blocked in send" close_while_blocked_in_send;
    case "Writer_channel: a thread that keeps the handle" thread_keeping_the_handle;
    case "Writer_channel: states" states;
    case "Writer_channel: while connecting" while_connecting;
    case "Writer_channel: collected while the handle is open" lost_channel;
    case "writer callback raises" writer_raises;
    case "writer thread error" writer_thread_error;
  ]
