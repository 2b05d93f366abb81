(* t02_connect.ml: every way of connecting: URI, Unix, TCP, socket, command, socket activation,
   and aio_connect with a Unix.sockaddr. *)
open Harness

let check_connected h =
  Alcotest.(check bool) "ready" true (NBD.aio_is_ready h);
  Alcotest.check int64 "size" size_1m (NBD.get_size h);
  let buf = Bytes.make 512 'x' in
  NBD.pread h buf 0L;
  Alcotest.(check bytes) "zeroes" (Bytes.make 512 '\000') buf

let memory = [ "memory"; "1M" ]

let uri () =
  with_server memory (fun server ->
      NBD.with_handle (fun h ->
          NBD.connect_uri h (uri server);
          check_connected h;
          let u = NBD.get_uri h in
          Alcotest.(check string) "scheme" "nbd+unix:" (String.sub u 0 9)))

let unix () =
  with_server memory (fun server ->
      NBD.with_handle (fun h ->
          NBD.connect_unix h (socket_path server);
          check_connected h))

let tcp () =
  with_server ~tcp:true memory (fun server ->
      let port = match server.address with Tcp p -> p | Unix_socket _ -> assert false in
      NBD.with_handle (fun h ->
          NBD.connect_tcp h "127.0.0.1" (string_of_int port);
          check_connected h))

let socket () =
  with_server memory (fun server ->
      let s = Unix.socket ~cloexec:true Unix.PF_UNIX Unix.SOCK_STREAM 0 in
      Unix.connect s (Unix.ADDR_UNIX (socket_path server));
      NBD.with_handle (fun h ->
          (* The handle owns the socket from here and closes it. *)
          NBD.connect_socket h s;
          check_connected h))

let command () =
  require "nbdkit";
  NBD.with_handle (fun h ->
      NBD.connect_command h (nbdkit_command memory);
      check_connected h)

let systemd_socket_activation () =
  require "nbdkit";
  NBD.with_handle (fun h ->
      NBD.connect_systemd_socket_activation h [ "nbdkit"; "--exit-with-parent"; "memory"; "1M" ];
      check_connected h)

let aio_connect () =
  with_server memory (fun server ->
      NBD.with_handle (fun h ->
          NBD.aio_connect h (Unix.ADDR_UNIX (socket_path server));
          poll_until h (fun () -> NBD.aio_is_ready h || NBD.aio_is_dead h);
          check_connected h))

let tests =
  [
    case "uri" uri;
    case "unix" unix;
    case "tcp" tcp;
    case "socket" socket;
    case "command" command;
    case "systemd socket activation" systemd_socket_activation;
    case "aio_connect sockaddr" aio_connect;
  ]
