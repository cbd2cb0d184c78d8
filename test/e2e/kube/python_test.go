package kube

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The Python example debugged locally: Debian's python3 runs
// examples/pyservice/app.py on the laptop with the pod's environment and
// identity and takes the Service's traffic; when it stops, the pod serves
// again.
func TestPythonServiceStolen(t *testing.T) {
	f := newFixture(t)
	f.applyExample("pyservice")
	f.rollout("deployment/pyservice")
	pod := f.pods("app=pyservice")[0]
	app := filepath.Join(moduleRoot(t), "examples", "pyservice", "app.py")

	r := f.start("deploy/pyservice", []string{"--steal"}, "/usr/bin/python3", app)
	r.Expect(r.Stderr, "stealing port 8080 of the target")
	r.Expect(r.Stdout, "pyservice listening on :8080")

	var got struct{ Service, Hostname, Greeting string }
	body := f.mustGet("http://pyservice/")
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("GET / through the Service: %q: %v", body, err)
	}
	want := struct{ Service, Hostname, Greeting string }{"pyservice", pod.name, "hello from the python pod"}
	if got != want {
		t.Errorf("the local service answered %+v, want the pod's identity %+v", got, want)
	}
	// The answer came from the laptop: its request log says so.
	r.Expect(r.Stdout, `"GET / HTTP/1.1" 200`)
	if v := f.mustGet("http://pyservice/env/SERVICE_NAME"); v != "pyservice" {
		t.Errorf("SERVICE_NAME seen locally = %q", v)
	}

	// SIGTERM reaches the program (the app exits 0 on it) and the steal
	// ends with the session.
	if err := r.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.Wait(); code != 0 {
		t.Errorf("remocal exec ended with %d after SIGTERM, want the app's 0", code)
	}
	if v := f.mustGet("http://pyservice/env/SERVICE_NAME"); v != "pyservice" {
		t.Errorf("after the session the Service answered %q, want the pod's pyservice", v)
	}
	logs := f.kubectl("logs", pod.name)
	if !strings.Contains(logs, `"GET /env/SERVICE_NAME HTTP/1.1" 200`) {
		t.Errorf("the pod did not serve the request after the session ended; its log:\n%s", logs)
	}
	if strings.Contains(logs, `"GET / HTTP/1.1"`) {
		t.Errorf("the pod served a request that was stolen; its log:\n%s", logs)
	}
}
