// Package files describes the kernel object behind one open descriptor of
// another process completely (the dump side, Inspect) and recreates an
// equivalent object inside godwit (the restore side, Create and its
// relatives); the engine then plants the new descriptor into the restored
// process.
//
// Inspect works from outside and changes nothing the process can observe: it
// takes a duplicate of the descriptor with pidfd_getfd, reads
// /proc/PID/fdinfo/FD, and only peeks at queued data (tee(2) for pipes,
// MSG_PEEK with a temporarily rewound SO_PEEK_OFF for sockets). The process
// should be frozen meanwhile, or the picture may be torn. The one exception
// is InspectWith in TCPEstablished mode: it puts a TCP connection into
// repair mode, locked against incoming segments, until Repairs.Finish.
//
// Kinds and what a Desc holds for each:
//
//	pipe, fifo  buffered bytes, pipe size, which end, inode (fifo: path)
//	eventfd     counter, EFD_SEMAPHORE, eventfd-id
//	timerfd     clock, remaining time and interval, pending ticks, settime flags
//	signalfd    signal mask
//	inotify     every watch: wd, mask, inode, device, file handle, path
//	epoll       every registration: target fd, events, data, target inode
//	unix        type, state, own and peer name, peer inode, queued data, options
//	tcp, udp    family, protocol (MPTCP too), addresses, state, backlog, options;
//	            with InspectWith, a connected TCP socket's TCP_REPAIR state
//	            (TCPEstablished) or the mark to restore it closed (TCPClose)
//	pidfd       the pid it refers to
//	memfd       name, size, contents (data extents only), seals
//
// Created objects are always O_CLOEXEC in godwit; Desc.Flags carries the
// process's O_CLOEXEC for the engine's dup3. Every error is a *fault.Error
// naming the pid, fd and kind; what godwit cannot do yet has the code
// fault.CodeUnsupported.
package files
