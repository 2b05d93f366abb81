(* t08_debug.ml: the debug callback: messages, replacement, removal, exceptions. *)

open Harness

let messages () =
  NBD.with_handle (fun h ->
      let got = ref [] in
      NBD.set_debug h true;
      NBD.set_debug_callback h (fun context msg -> got := (context, msg) :: !got; 0);
      NBD.set_export_name h "traced";
      Alcotest.(check bool) "debug on" true (NBD.get_debug h);
      Alcotest.(check bool) "a message from nbd_set_export_name" true
        (List.exists (fun (c, _) -> c = "nbd_set_export_name") !got);
      Alcotest.(check bool) "the argument traced" true
        (List.exists
           (fun (_, m) ->
             let needle = "traced" in
             let n = String.length needle and l = String.length m in
             let rec at i = i + n <= l && (String.sub m i n = needle || at (i + 1)) in
             at 0)
           !got))

let replace_and_clear () =
  NBD.with_handle (fun h ->
      let before = NBD.callbacks_held () in
      let first = ref 0 and second = ref 0 in
      NBD.set_debug h true;
      NBD.set_debug_callback h (fun _ _ -> incr first; 0);
      NBD.set_debug_callback h (fun _ _ -> incr second; 0);
      Alcotest.(check int) "the first one released" (before + 1) (NBD.callbacks_held ());
      let first_seen = !first in
      NBD.set_handle_name h "x";
      Alcotest.(check int) "first no longer called" first_seen !first;
      Alcotest.(check bool) "second called" true (!second > 0);
      NBD.clear_debug_callback h;
      Alcotest.(check int) "released" before (NBD.callbacks_held ()))

exception Debug_failed

(* An exception raised by a callback is raised again by the call during which it ran; close
   drops it, as a cleanup must not fail. *)
let exception_propagates () =
  let h = NBD.create () in
  let armed = ref false in
  NBD.set_debug h true;
  NBD.set_debug_callback h (fun _ _ -> if !armed then raise Debug_failed else 0);
  armed := true;
  Alcotest.check_raises "raised by the call" Debug_failed (fun () -> NBD.set_handle_name h "y");
  armed := false;
  NBD.set_handle_name h "z";
  armed := true;
  NBD.close h

let tests =
  [
    case "messages" messages;
    case "replace and clear" replace_and_clear;
    case "exception propagates" exception_propagates;
  ]
