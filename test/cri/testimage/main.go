// Command testimage is the one program inside the images that test/cri
// builds for critest (no image comes from the internet). Its name picks
// what it does, as the images critest expects would:
//
//	pause       the sandbox's init: reaps children, exits on SIGTERM/SIGINT
//	nginx       writes /var/run/nginx.pid, re-executes itself as
//	            "nginx: master process ..." (what critest greps /proc/1/cmdline
//	            for) and serves HTTP on $PORT (80)
//	httpd       says "httpd" on stderr (critest reads it from the log) and
//	            serves HTTP on $PORT (80)
//	nonewprivs  installed setuid root: prints "Effective uid: N"
package main

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	name := filepath.Base(os.Args[0])
	switch {
	case name == "pause":
		pause()
	case strings.HasPrefix(name, "nginx"):
		if !strings.HasPrefix(os.Args[0], "nginx: ") {
			if err := os.WriteFile("/var/run/nginx.pid", fmt.Appendf(nil, "%d\n", os.Getpid()), 0o644); err != nil {
				fail(err)
			}
			fail(syscall.Exec("/proc/self/exe", []string{"nginx: master process nginx -g daemon off;"}, os.Environ()))
		}
		serve("<html><body><h1>Welcome to nginx!</h1></body></html>\n")
	case name == "httpd":
		fmt.Fprintln(os.Stderr, "httpd: serving (test/cri's stand-in for Apache httpd)")
		serve("<html><body><h1>It works!</h1></body></html>\n")
	case name == "nonewprivs":
		fmt.Printf("Effective uid: %d\n", os.Geteuid())
	default:
		fail(fmt.Errorf("unknown personality %q", name))
	}
}

func pause() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

func serve(body string) {
	port := os.Getenv("PORT")
	if port == "" {
		port = "80"
	}
	err := http.ListenAndServe(":"+port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, body)
	}))
	fail(err)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
