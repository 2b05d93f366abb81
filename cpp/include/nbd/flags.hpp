// flags.hpp: nbd::Flags<Bit>, a typed set of the bits of one flag enum (e.g. nbd::CmdFlags).
#pragma once

#include <concepts>
#include <type_traits>

namespace nbd {

// nbd.hpp specialises this for each flag enum with kMask, the union of its known bits.  Only
// specialised enums get the bitwise operators below, so plain enums keep their strong typing.
template <class Bit>
struct FlagTraits;

template <class Bit>
concept FlagBit = std::is_enum_v<Bit> && requires {
  { FlagTraits<Bit>::kMask } -> std::convertible_to<std::underlying_type_t<Bit>>;
};

template <FlagBit Bit>
class Flags {
 public:
  using Raw = std::underlying_type_t<Bit>;

  constexpr Flags() noexcept = default;
  // Implicit: a single bit is a set, so `h.pread(buf, 0, CmdFlag::Fua)` reads naturally.
  constexpr Flags(Bit bit) noexcept : raw_(static_cast<Raw>(bit)) {}
  // Any bits, including ones this header does not know: with strict flag checking off, libnbd
  // passes them to the server, which is how servers get tested.
  constexpr explicit Flags(Raw raw) noexcept : raw_(raw) {}

  static constexpr Flags all() noexcept { return Flags{static_cast<Raw>(FlagTraits<Bit>::kMask)}; }

  constexpr Raw value() const noexcept { return raw_; }
  constexpr explicit operator bool() const noexcept { return raw_ != 0; }
  // True when every bit of f is set here.
  constexpr bool has(Flags f) const noexcept { return (raw_ & f.raw_) == f.raw_; }

  constexpr Flags& operator|=(Flags f) noexcept { raw_ |= f.raw_; return *this; }
  constexpr Flags& operator&=(Flags f) noexcept { raw_ &= f.raw_; return *this; }
  constexpr Flags& operator^=(Flags f) noexcept { raw_ ^= f.raw_; return *this; }

  friend constexpr Flags operator|(Flags a, Flags b) noexcept { return a |= b; }
  friend constexpr Flags operator&(Flags a, Flags b) noexcept { return a &= b; }
  friend constexpr Flags operator^(Flags a, Flags b) noexcept { return a ^= b; }
  // Complements within the known bits: ~CmdFlags{} is every known flag, never an unknown one.
  friend constexpr Flags operator~(Flags a) noexcept {
    return Flags{static_cast<Raw>(~a.raw_ & all().raw_)};
  }
  friend constexpr bool operator==(const Flags& a, const Flags& b) noexcept = default;

 private:
  Raw raw_ = 0;
};

template <FlagBit Bit>
constexpr Flags<Bit> operator|(Bit a, Bit b) noexcept {
  return Flags<Bit>{a} | b;
}

template <FlagBit Bit>
constexpr Flags<Bit> operator&(Bit a, Bit b) noexcept {
  return Flags<Bit>{a} & b;
}

template <FlagBit Bit>
constexpr Flags<Bit> operator^(Bit a, Bit b) noexcept {
  return Flags<Bit>{a} ^ b;
}

template <FlagBit Bit>
constexpr Flags<Bit> operator~(Bit a) noexcept {
  return ~Flags<Bit>{a};
}

}  // namespace nbd
