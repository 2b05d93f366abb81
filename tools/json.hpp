// json.hpp: a small streaming JSON writer (indented, valid UTF-8 out whatever comes in).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace nbdpp {

template <typename T>
inline constexpr bool kIsOptional = false;
template <typename T>
inline constexpr bool kIsOptional<std::optional<T>> = true;

// Appends one JSON document to a string: begin/end nest objects and arrays, key() names the next
// member of an object, and the value calls write one value.  Commas and indentation are
// automatic.  Strings that are not valid UTF-8 (export names are bytes) get U+FFFD for each
// bad byte, so the output always parses.
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  void begin_object() { open('{'); }
  void end_object() { close('}'); }
  void begin_array() { open('['); }
  void end_array() { close(']'); }

  void key(std::string_view name);
  void string(std::string_view s);
  void boolean(bool b);
  void number(int64_t n);
  void number(uint64_t n);
  void null();

  // key(name), then value: a string, a bool, an integer, or an optional of one (null if empty).
  template <typename T>
  void member(std::string_view name, const T& value) {
    key(name);
    write(value);
  }

 private:
  template <typename T>
  void write(const T& value) {
    if constexpr (std::is_same_v<T, bool>) {
      boolean(value);
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      number(int64_t{value});
    } else if constexpr (std::is_integral_v<T>) {
      number(uint64_t{value});
    } else if constexpr (kIsOptional<T>) {
      if (value)
        write(*value);
      else
        null();
    } else {
      string(std::string_view{value});
    }
  }

  void open(char c);
  void close(char c);
  void before_value();
  void newline();
  void quote(std::string_view s);

  std::string& out_;
  std::vector<bool> has_members_;  // per open container: whether it has a member yet
  bool after_key_ = false;
};

}  // namespace nbdpp
