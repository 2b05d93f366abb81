// nbd_hpp.cpp: nbd/nbd.hpp compiles on its own as C++20.
#include <nbd/nbd.hpp>
