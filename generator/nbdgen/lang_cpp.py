# Type maps for the header-only C++ wrapper nbd/nbd.hpp.
EXPORTS = []
