#ifndef CLINUX_SHIM_H
#define CLINUX_SHIM_H
/* Swift's Glibc module leaves out epoll and eventfd, which the serving loops wait with. */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif
