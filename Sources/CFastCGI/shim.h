#ifndef CFASTCGI_SHIM_H
#define CFASTCGI_SHIM_H
/* fcgiapp.h uses FILE-free declarations only; FCGX_FPrintF is variadic and
   unavailable in Swift, so the worker writes with FCGX_PutStr. */
#include <fcgiapp.h>
#include <fastcgi.h>
/* Swift's Glibc module leaves out epoll, which the worker's accept loop waits with. */
#include <sys/epoll.h>

/* The descriptor libfcgi treats as an inherited listening socket. */
static const int CFASTCGI_LISTENSOCK_FILENO = FCGI_LISTENSOCK_FILENO;
static const int CFASTCGI_FAIL_ACCEPT_ON_INTR = FCGI_FAIL_ACCEPT_ON_INTR;

#endif
