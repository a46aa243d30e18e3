#ifndef CFASTCGI_SHIM_H
#define CFASTCGI_SHIM_H
/* libfcgi opens the listening socket (FCGX_OpenSocket); fastcgi.h has the protocol's
   constants. The worker reads and writes the records itself. */
#include <fcgiapp.h>
#include <fastcgi.h>
/* Swift's Glibc module leaves out epoll and eventfd, which the serving loops wait with. */
#include <sys/epoll.h>
#include <sys/eventfd.h>

/* The descriptor libfcgi treats as an inherited listening socket. */
static const int CFASTCGI_LISTENSOCK_FILENO = FCGI_LISTENSOCK_FILENO;

#endif
