// Command httpserver is a small net/http server for godwit's end-to-end
// tests: a statically linked Go program (build it with CGO_ENABLED=0) with
// many threads, the runtime's epoll and eventfd, and a listening TCP socket,
// holding state in memory only.
//
// Usage: httpserver -addr 127.0.0.1:PORT [-locked N]
//
//	GET  /count  {"pid","ppid","boot","count"}: boot is a random number
//	             drawn at start (the same value proves the same process, not
//	             a new one), count the number of POST /inc so far
//	POST /inc    increments count and returns the same object
//	GET  /tids   {"start","now"}: the thread ids that N goroutines, each
//	             locked to its own OS thread, saw at start and see now
//
// It writes nothing to stdout and to stderr only when it fails.
package main

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"syscall"
)

type state struct {
	Pid   int    `json:"pid"`
	PPid  int    `json:"ppid"`
	Boot  uint64 `json:"boot"`
	Count int64  `json:"count"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	locked := flag.Int("locked", 4, "goroutines locked to their own OS threads")
	flag.Parse()

	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		log.Fatal(err)
	}
	boot := binary.LittleEndian.Uint64(b[:])

	var mu sync.Mutex
	var count int64
	get := func(inc bool) state {
		mu.Lock()
		defer mu.Unlock()
		if inc {
			count++
		}
		return state{Pid: os.Getpid(), PPid: os.Getppid(), Boot: boot, Count: count}
	}

	// Each locked goroutine answers with the id of the thread it runs on.
	asks := make([]chan chan int, *locked)
	start := make([]int, *locked)
	var ready sync.WaitGroup
	for i := range asks {
		asks[i] = make(chan chan int)
		ready.Add(1)
		go func() {
			runtime.LockOSThread()
			start[i] = syscall.Gettid()
			ready.Done()
			for reply := range asks[i] {
				reply <- syscall.Gettid()
			}
		}()
	}
	ready.Wait()

	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, r *http.Request) { reply(w, get(false)) })
	mux.HandleFunc("POST /inc", func(w http.ResponseWriter, r *http.Request) { reply(w, get(true)) })
	mux.HandleFunc("GET /tids", func(w http.ResponseWriter, r *http.Request) {
		now := make([]int, len(asks))
		for i, ask := range asks {
			c := make(chan int)
			ask <- c
			now[i] = <-c
		}
		reply(w, map[string][]int{"start": start, "now": now})
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.Serve(ln, mux))
}
