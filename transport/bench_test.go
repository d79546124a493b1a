package transport

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

const benchChunk = 1 << 20

// drain reads r to its end with a large buffer and reports the bytes read.
func drain(r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// cpuMeter reports the CPU time (user and system, all threads of the test
// process) spent per GB moved, a figure that other load on the machine
// disturbs less than throughput.
type cpuMeter struct{ start time.Duration }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) *cpuMeter {
	b.ResetTimer()
	return &cpuMeter{start: cpuTime()}
}

func (m *cpuMeter) report(b *testing.B) {
	b.StopTimer()
	gb := float64(b.N) * benchChunk / 1e9
	b.ReportMetric((cpuTime()-m.start).Seconds()/gb, "cpu-s/GB")
}

// pump writes b.N chunks of benchChunk bytes to w, then closes it.
func pump(b *testing.B, w io.WriteCloser) {
	chunk := make([]byte, benchChunk)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	for b.Loop() {
		if _, err := w.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkTLSThroughput measures one TLS 1.3 connection over loopback,
// without the multiplexer: the ceiling for a session.
func BenchmarkTLSThroughput(b *testing.B) {
	p := newPKI(b)
	srvCfg := p.server(b)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, err = drain(c)
		done <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), p.client(b, "127.0.0.1"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetBytes(benchChunk)
	cpu := startCPU(b)
	pump(b, closeWriter{c})
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	cpu.report(b)
}

type closeWriter struct{ *tls.Conn }

func (c closeWriter) Close() error { return c.CloseWrite() }

// BenchmarkSessionThroughput measures one stream of a session over
// loopback.
func BenchmarkSessionThroughput(b *testing.B) {
	benchSession(b, 1)
}

// BenchmarkSessionThroughput4Streams measures four streams of one session
// sending at once; the figure is their sum.
func BenchmarkSessionThroughput4Streams(b *testing.B) {
	benchSession(b, 4)
}

func benchSession(b *testing.B, streams int) {
	c, s := pair(b)
	ctx := testCtx(b)
	done := make(chan error, streams)
	go func() {
		for range streams {
			st, err := s.Accept(ctx)
			if err != nil {
				done <- err
				return
			}
			go func() {
				defer st.Close()
				_, err := drain(st)
				done <- err
			}()
		}
	}()
	sts := make([]net.Conn, streams)
	for i := range sts {
		st, err := c.Open(ctx)
		if err != nil {
			b.Fatal(err)
		}
		sts[i] = st
	}
	b.SetBytes(benchChunk)
	cpu := startCPU(b)
	if streams == 1 {
		pump(b, sts[0])
	} else {
		chunk := make([]byte, benchChunk)
		work := make(chan struct{})
		var wg sync.WaitGroup
		for _, st := range sts {
			wg.Go(func() {
				for range work {
					if _, err := st.Write(chunk); err != nil {
						b.Error(err)
					}
				}
				st.Close()
			})
		}
		for b.Loop() {
			work <- struct{}{}
		}
		close(work)
		wg.Wait()
	}
	for range streams {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}
