(* NBD.ml: OCaml binding of mini: types, then one external per call (nbd_stubs.c). *)
(* GENERATED from api.yaml by generator/generate.py: DO NOT EDIT. *)

exception Error of string * Unix.error option
exception Closed of string

(* The stubs raise these by name (nbdpp_runtime.c). *)
let () =
  Callback.register_exception "nbdpp_ocaml_error" (Error ("", None));
  Callback.register_exception "nbdpp_ocaml_closed" (Closed "")

external errno_of_unix_error : Unix.error -> int = "nbdpp_ocaml_errno_of_unix_error"

module MODE = struct
  type t =
    | IDLE
    | BUSY
    | UNKNOWN of int
end

module CMD_FLAG = struct
  type t =
    | FUA
    | DF
    | UNKNOWN of int

  let mask = [FUA; DF]
end

let read_data = 1l
let read_hole = 2l
let namespace_base = "base:"
let context_base_allocation = "base:allocation"
let context_base_dirty_bitmap = "base:dirty-bitmap:"
let state_hole = 1l

module Buffer = struct
  type t = (char, Bigarray.int8_unsigned_elt, Bigarray.c_layout) Bigarray.Array1.t

  let alloc n =
    let b = Bigarray.Array1.create Bigarray.char Bigarray.c_layout n in
    Bigarray.Array1.fill b '\000';
    b

  let size = Bigarray.Array1.dim

  let of_string s =
    let b = Bigarray.Array1.create Bigarray.char Bigarray.c_layout (String.length s) in
    String.iteri (Bigarray.Array1.unsafe_set b) s;
    b

  let of_bytes b = of_string (Bytes.unsafe_to_string b)

  let to_bytes b = Bytes.init (size b) (Bigarray.Array1.unsafe_get b)

  let to_string b = Bytes.unsafe_to_string (to_bytes b)
end

type cookie = int64

type extent = int64 * int64

type completion_callback = int ref -> int

type chunk_callback = bytes -> int64 -> int ref -> int

type debug_callback = string -> string -> int

type extent_callback = string -> int64 -> int64 array -> int ref -> int

type extent64_callback = string -> int64 -> extent array -> int ref -> int

type t

external callbacks_held : unit -> int = "nbdpp_ocaml_callbacks_held"

external close : t -> unit
  = "nbdpp_ocaml_close"

external set_mode : t -> MODE.t -> unit
  = "nbdpp_ocaml_set_mode"

external get_mode : t -> MODE.t
  = "nbdpp_ocaml_get_mode"

external pread : ?flags:CMD_FLAG.t list -> t -> bytes -> int64 -> unit
  = "nbdpp_ocaml_pread"

external aio_pread :
  ?completion:completion_callback -> ?flags:CMD_FLAG.t list -> t -> Buffer.t -> int64 ->
  chunk_callback -> cookie
  = "nbdpp_ocaml_aio_pread_byte" "nbdpp_ocaml_aio_pread"

external set_debug_callback : t -> debug_callback -> unit
  = "nbdpp_ocaml_set_debug_callback"

external block_status_64 : t -> int64 -> int64 -> string list -> extent64_callback -> unit
  = "nbdpp_ocaml_block_status_64"

external get_name : t -> string
  = "nbdpp_ocaml_get_name"

external stats_bytes_sent : t -> int64
  = "nbdpp_ocaml_stats_bytes_sent"

external connect_vsock : t -> int64 -> int64 -> unit
  = "nbdpp_ocaml_connect_vsock"
