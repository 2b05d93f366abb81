(* harness.ml: nbdkit servers for the tests, on private sockets, and shared checks. *)

let have_program name =
  let path = try Sys.getenv "PATH" with Not_found -> "/usr/bin:/bin" in
  List.exists
    (fun dir -> dir <> "" && Sys.file_exists (Filename.concat dir name))
    (String.split_on_char ':' path)

(* A test that needs a missing tool is skipped, with the reason in its output (this alcotest has
   no skip of its own, so the test passes). *)
exception Skip of string

let require program =
  if not (have_program program) then raise (Skip (program ^ " is not installed"))

let case name f =
  Alcotest.test_case name `Quick (fun () ->
      try f () with Skip reason -> Printf.printf "SKIP: %s: %s\n%!" name reason)

let mib = 1048576
let size_1m = Int64.of_int mib

let rec remove_tree path =
  match (Unix.lstat path).Unix.st_kind with
  | Unix.S_DIR ->
      Array.iter (fun n -> remove_tree (Filename.concat path n)) (Sys.readdir path);
      Unix.rmdir path
  | _ -> Unix.unlink path
  | exception Unix.Unix_error (Unix.ENOENT, _, _) -> ()

let with_temp_dir f =
  let base = Filename.get_temp_dir_name () in
  let rec make tries =
    let suffix = Random.bits () land 0xffffff in
    let name = Printf.sprintf "nbdpp-ocaml-%d-%06x" (Unix.getpid ()) suffix in
    let dir = Filename.concat base name in
    match Unix.mkdir dir 0o700 with
    | () -> dir
    | exception Unix.Unix_error (Unix.EEXIST, _, _) when tries > 0 -> make (tries - 1)
  in
  let dir = make 100 in
  Fun.protect ~finally:(fun () -> remove_tree dir) (fun () -> f dir)

type address = Unix_socket of string | Tcp of int
type server = { pid : int; address : address }

(* Starts nbdkit on a socket we already listen on, handed over by systemd socket activation:
   the socket is fd 3 and LISTEN_PID names the server's own pid, which only the shell knows
   before it execs nbdkit.  Clients can connect at once (the kernel queues them), so there is
   no waiting for the server to come up, and no port is ever guessed. *)
let spawn_activated listener args =
  let script = "exec 3<&0 0</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec \"$@\"" in
  let argv =
    Array.of_list ([ "sh"; "-c"; script; "sh"; "nbdkit"; "-f"; "--exit-with-parent" ] @ args)
  in
  let pid = Unix.create_process "sh" argv listener Unix.stdout Unix.stderr in
  Unix.close listener;
  pid

let listen addr domain =
  let s = Unix.socket ~cloexec:true domain Unix.SOCK_STREAM 0 in
  Unix.bind s addr;
  Unix.listen s 16;
  s

let stop server =
  (try Unix.kill server.pid Sys.sigkill with Unix.Unix_error (Unix.ESRCH, _, _) -> ());
  ignore (Unix.waitpid [] server.pid)

let with_server ?(tcp = false) args f =
  require "nbdkit";
  with_temp_dir (fun dir ->
      let listener, address =
        if tcp then begin
          let s = listen (Unix.ADDR_INET (Unix.inet_addr_loopback, 0)) Unix.PF_INET in
          match Unix.getsockname s with
          | Unix.ADDR_INET (_, port) -> (s, Tcp port)
          | Unix.ADDR_UNIX _ -> assert false
        end
        else begin
          let path = Filename.concat dir "sock" in
          (listen (Unix.ADDR_UNIX path) Unix.PF_UNIX, Unix_socket path)
        end
      in
      let server = { pid = spawn_activated listener args; address } in
      Fun.protect ~finally:(fun () -> stop server) (fun () -> f server))

let socket_path server =
  match server.address with Unix_socket p -> p | Tcp _ -> invalid_arg "socket_path"

let uri server = "nbd+unix:///?socket=" ^ socket_path server

(* A handle connected to a fresh nbdkit serving args (by default a 1 MiB memory disk). *)
let with_connected ?(args = [ "memory"; "1M" ]) ?(setup = fun _ -> ()) f =
  with_server args (fun server ->
      NBD.with_handle (fun h ->
          setup h;
          NBD.connect_unix h (socket_path server);
          f h))

(* nbdkit as the handle's own subprocess, talking over its stdin/stdout. *)
let nbdkit_command args = [ "nbdkit"; "-s"; "--exit-with-parent" ] @ args

(* Runs poll until cond holds; fails instead of hanging if nothing happens for 10 s. *)
let poll_until h cond =
  while not (cond ()) do
    if NBD.poll h 10_000 = 0 then Alcotest.fail "poll timed out"
  done

let pattern n seed = Bytes.init n (fun i -> Char.chr ((i * 7 + seed) land 0xff))

(* Checks that f raises NBD.Error with errno, and that the message names the C function. *)
let check_error ?call errno f =
  match f () with
  | _ -> Alcotest.failf "expected NBD.Error (%s)" (Unix.error_message errno)
  | exception NBD.Error (msg, got) ->
      Alcotest.(check bool)
        ("errno " ^ Unix.error_message errno ^ " for: " ^ msg)
        true (got = Some errno);
      Option.iter
        (fun c ->
          let prefix = c ^ ": " in
          Alcotest.(check string) "message prefix" prefix
            (String.sub msg 0 (min (String.length msg) (String.length prefix))))
        call

let int64 = Alcotest.int64
