// Peer "go": the reference. Goroutines, channels, GOMAXPROCS=procs; standard
// library only. Sizes mirror ../../common/src/lib.rs (Sizes::FULL and Sizes::SMALL);
// ../../README.md defines each workload.
//
//	peer-go <bench> [--procs N] [--port P] [--small]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	skynetDiv     = 10
	mpmcProducers = 4
	mpmcConsumers = 4
	mpmcCap       = 1024
	timerRounds   = 10
	timerSleep    = time.Millisecond
	starveSleeps  = 20
	starveSleep   = 10 * time.Millisecond
	mutexTasks    = 1000
	semPermits    = 4
	wgTasks       = 100
	connsBuf      = 512 // conns: one connection's read buffer
)

// The sizes: full by default, one hundredth with --small (a smoke test).
var (
	spawnN       = 1_000_000
	skynetLeaves = int64(1_000_000)
	pingpongN    = 1_000_000
	yieldN       = 5_000_000 // per task; 2 tasks
	mpmcN        = int64(10_000_000)
	timerTasks   = 100_000
	idleN        = 100_000
	park1mN      = 1_000_000
	starveHog    = 2 * time.Second
	mutexOps     = 1000 // per task; mutexTasks tasks
	wgRounds     = 10_000
	connsN       = 10_000
)

var procs, port int
var small bool

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	bench := os.Args[1]
	fs := flag.NewFlagSet("peer-go", flag.ExitOnError)
	fs.IntVar(&procs, "procs", 2, "GOMAXPROCS")
	fs.IntVar(&port, "port", 7000, "port for echo/http")
	fs.BoolVar(&small, "small", false, "run every workload at 1/100 of its size")
	fs.Parse(os.Args[2:])
	if small {
		spawnN, skynetLeaves, pingpongN, yieldN = 10_000, 10_000, 10_000, 50_000
		mpmcN, timerTasks, idleN, starveHog = 100_000, 1_000, 1_000, 500*time.Millisecond
		mutexOps, park1mN, wgRounds, connsN = 10, 10_000, 100, 100
	}
	runtime.GOMAXPROCS(procs)
	benches := map[string]func(){
		"spawn": spawn, "skynet": skynet, "pingpong": pingpong, "yield": yield,
		"mpmc": func() { mpmc("mpmc", mpmcCap) }, "mpmc0": func() { mpmc("mpmc0", 0) },
		"timers": timers, "starve": starve, "mutex": mutexBench,
		"semaphore": semaphoreBench, "waitgroup": waitGroupBench,
		"idlemem": func() { idle("idlemem", idleN) }, "park1m": func() { idle("park1m", park1mN) },
		"echo": func() { serve(echoConn) }, "http": func() { serve(httpConn) },
		"conns": conns,
	}
	b, ok := benches[bench]
	if !ok {
		usage()
	}
	b()
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: peer-go <bench> [--procs N] [--port P] [--small]")
	os.Exit(2)
}

func report(bench string, value float64, unit, note string) {
	if small {
		note = strings.TrimPrefix(note+";size=small", ";")
	}
	if note != "" {
		note = " note=" + strings.ReplaceAll(note, " ", "_")
	}
	fmt.Printf("RESULT bench=%s peer=go procs=%d value=%.2f unit=%s%s\n", bench, procs, value, unit, note)
}

func nsPer(d time.Duration, n int) float64 { return float64(d.Nanoseconds()) / float64(n) }
func ms(d time.Duration) float64           { return float64(d.Nanoseconds()) / 1e6 }

func spawn() {
	var count atomic.Int64
	var wg sync.WaitGroup
	wg.Add(spawnN)
	t := time.Now()
	for i := 0; i < spawnN; i++ {
		go func() {
			count.Add(1)
			wg.Done()
		}()
	}
	wg.Wait()
	el := time.Since(t)
	must(count.Load() == int64(spawnN))
	report("spawn", nsPer(el, spawnN), "ns/task", "")
}

func skynetNode(out chan<- int64, num, size int64) {
	if size == 1 {
		out <- num
		return
	}
	rc := make(chan int64, skynetDiv)
	step := size / skynetDiv
	for i := int64(0); i < skynetDiv; i++ {
		go skynetNode(rc, num+i*step, step)
	}
	var sum int64
	for i := 0; i < skynetDiv; i++ {
		sum += <-rc
	}
	out <- sum
}

func skynet() {
	t := time.Now()
	out := make(chan int64, 1)
	go skynetNode(out, 0, skynetLeaves)
	sum := <-out
	el := time.Since(t)
	must(sum == skynetLeaves*(skynetLeaves-1)/2)
	report("skynet", ms(el), "ms", "")
}

func pingpong() {
	ping, pong := make(chan int), make(chan int)
	var wg sync.WaitGroup
	wg.Add(2)
	t := time.Now()
	go func() {
		defer wg.Done()
		for i := 0; i < pingpongN; i++ {
			pong <- <-ping
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < pingpongN; i++ {
			ping <- i
			must(<-pong == i)
		}
	}()
	wg.Wait()
	report("pingpong", nsPer(time.Since(t), pingpongN), "ns/rt", "")
}

func yield() {
	var wg sync.WaitGroup
	wg.Add(2)
	t := time.Now()
	for k := 0; k < 2; k++ {
		go func() {
			defer wg.Done()
			for i := 0; i < yieldN; i++ {
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	report("yield", nsPer(time.Since(t), 2*yieldN), "ns/yield", "")
}

func mpmc(name string, capacity int) {
	ch := make(chan int64, capacity)
	var prod sync.WaitGroup
	prod.Add(mpmcProducers)
	sums := make(chan int64, mpmcConsumers)
	t := time.Now()
	for p := 0; p < mpmcProducers; p++ {
		go func() {
			defer prod.Done()
			for i := int64(0); i < mpmcN/mpmcProducers; i++ {
				ch <- i
			}
		}()
	}
	for c := 0; c < mpmcConsumers; c++ {
		go func() {
			var s int64
			for v := range ch {
				s += v
			}
			sums <- s
		}()
	}
	prod.Wait()
	close(ch)
	var sum int64
	for c := 0; c < mpmcConsumers; c++ {
		sum += <-sums
	}
	el := time.Since(t)
	per := int64(mpmcN / mpmcProducers)
	must(sum == mpmcProducers*per*(per-1)/2)
	report(name, nsPer(el, int(mpmcN)), "ns/msg", "")
}

// mutexTasks goroutines each take one sync.Mutex mutexOps times around an increment.
// semaphoreBench: mutexTasks goroutines share semPermits permits of Go's semaphore
// idiom, a buffered channel, each acquiring and releasing mutexOps times.
func semaphoreBench() {
	sem := make(chan struct{}, semPermits)
	var wg sync.WaitGroup
	var count atomic.Int64
	wg.Add(mutexTasks)
	t := time.Now()
	for i := 0; i < mutexTasks; i++ {
		go func() {
			for j := 0; j < mutexOps; j++ {
				sem <- struct{}{}
				count.Add(1)
				<-sem
			}
			wg.Done()
		}()
	}
	wg.Wait()
	el := time.Since(t)
	if count.Load() != int64(mutexTasks*mutexOps) {
		panic("semaphore: wrong count")
	}
	report("semaphore", nsPer(el, mutexTasks*mutexOps), "ns/acquire", "buffered_channel")
}

// waitGroupBench: wgRounds rounds of wgTasks goroutines that each call Done once on a
// sync.WaitGroup, then Wait.
func waitGroupBench() {
	var count atomic.Int64
	t := time.Now()
	for r := 0; r < wgRounds; r++ {
		var wg sync.WaitGroup
		wg.Add(wgTasks)
		for i := 0; i < wgTasks; i++ {
			go func() {
				count.Add(1)
				wg.Done()
			}()
		}
		wg.Wait()
	}
	el := time.Since(t)
	if count.Load() != int64(wgRounds*wgTasks) {
		panic("waitgroup: wrong count")
	}
	report("waitgroup", nsPer(el, wgRounds*wgTasks), "ns/done", "")
}

func mutexBench() {
	var mu sync.Mutex
	var wg sync.WaitGroup
	count := 0
	wg.Add(mutexTasks)
	t := time.Now()
	for i := 0; i < mutexTasks; i++ {
		go func() {
			for j := 0; j < mutexOps; j++ {
				mu.Lock()
				count++
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	el := time.Since(t)
	mu.Lock()
	c := count
	mu.Unlock()
	if c != mutexTasks*mutexOps {
		panic("mutex: wrong count")
	}
	report("mutex", nsPer(el, mutexTasks*mutexOps), "ns/lock", "")
}

func timers() {
	var lateNs atomic.Int64
	var wg sync.WaitGroup
	wg.Add(timerTasks)
	t := time.Now()
	for i := 0; i < timerTasks; i++ {
		go func() {
			defer wg.Done()
			for r := 0; r < timerRounds; r++ {
				s := time.Now()
				time.Sleep(timerSleep)
				lateNs.Add(int64(time.Since(s) - timerSleep))
			}
		}()
	}
	wg.Wait()
	wall := time.Since(t)
	report("timers-wall", ms(wall), "ms", "")
	report("timers-late", float64(lateNs.Load())/float64(timerTasks*timerRounds)/1e3, "us", "")
}

func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	must(err == nil)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			v, err := strconv.ParseInt(f[1], 10, 64)
			must(err == nil)
			return v
		}
	}
	panic("no VmRSS")
}

// idle is idlemem and park1m: n goroutines each block receiving on their own channel.
func idle(bench string, n int) {
	var started atomic.Int64
	var wg sync.WaitGroup
	wg.Add(n)
	before := rssKiB()
	t := time.Now()
	chans := make([]chan struct{}, n)
	for i := range chans {
		ch := make(chan struct{})
		chans[i] = ch
		go func() {
			defer wg.Done()
			started.Add(1)
			<-ch
		}()
	}
	for started.Load() < int64(n) {
		time.Sleep(time.Millisecond)
	}
	allStarted := time.Since(t)
	after := rssKiB()
	for _, ch := range chans {
		close(ch) // releases every task
	}
	wg.Wait()
	perTask := float64((after-before)*1024) / float64(n)
	if bench == "park1m" {
		report("park1m-time", ms(allStarted), "ms", "")
		report("park1m-mem", perTask, "B/task", "")
	} else {
		report(bench, perTask, "B/task", "")
	}
}

// hog is the starve hog: a tight arithmetic loop, no calls and no yields, until stop.
//
//go:noinline
func hog(stop *atomic.Bool) uint64 {
	x := uint64(1)
	for !stop.Load() {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

func starve() {
	var stop atomic.Bool
	time.AfterFunc(starveHog, func() { stop.Store(true) })
	done := make(chan uint64)
	go func() { done <- hog(&stop) }()
	var worst time.Duration
	for i := 0; i < starveSleeps; i++ {
		t := time.Now()
		time.Sleep(starveSleep)
		worst = max(worst, time.Since(t)-starveSleep)
	}
	<-done
	report("starve", ms(worst), "ms", "")
}

func serve(conn func(net.Conn)) {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	must(err == nil)
	for {
		c, err := ln.Accept()
		must(err == nil)
		go conn(c) // Go sets TCP_NODELAY by default
	}
}

func echoConn(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

var httpResponse = []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello")

// httpConn answers every complete request (a header block ended by a blank line).
func httpConn(c net.Conn) {
	defer c.Close()
	var pending, out []byte
	chunk := make([]byte, 4096)
	for {
		n, err := c.Read(chunk)
		if err != nil {
			return
		}
		pending = append(pending, chunk[:n]...)
		out, start := out[:0], 0
		for {
			i := bytes.Index(pending[start:], []byte("\r\n\r\n"))
			if i < 0 {
				break
			}
			start += i + 4
			out = append(out, httpResponse...)
		}
		pending = pending[:copy(pending, pending[start:])]
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}
}

func must(ok bool) {
	if !ok {
		panic("check failed")
	}
}

// conns: serves connections until connsN of them have echoed the client's first byte,
// then reports the RSS growth per connection since the listener was bound and exits
// (the client, peer-loadgen --mode conns, reports the time).
func conns() {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	must(err == nil)
	before := rssKiB()
	var served atomic.Int64
	first := func() {
		if served.Add(1) == int64(connsN) {
			report("conns-mem", float64((rssKiB()-before)*1024)/float64(connsN), "B/conn", "")
			os.Exit(0)
		}
	}
	for {
		c, err := ln.Accept()
		must(err == nil)
		go connsConn(c, first)
	}
}

func connsConn(c net.Conn, first func()) {
	defer c.Close()
	buf := make([]byte, connsBuf)
	for once := true; ; once = false {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
		if once {
			first()
		}
	}
}
