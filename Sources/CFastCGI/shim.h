#ifndef CFASTCGI_SHIM_H
#define CFASTCGI_SHIM_H
/* libfcgi opens the listening socket (FCGX_OpenSocket); fastcgi.h has the protocol's
   constants. The worker reads and writes the records itself. */
#include <fcgiapp.h>
#include <fastcgi.h>

/* The descriptor libfcgi treats as an inherited listening socket. */
static const int CFASTCGI_LISTENSOCK_FILENO = FCGI_LISTENSOCK_FILENO;

#endif
