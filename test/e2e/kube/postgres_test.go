package kube

import (
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/remocal/remocal/test/procwatch"
)

// psqlBin is Debian's psql as a developer runs it: postgresql-common's
// pg_wrapper, a Perl script that execs the newest installed client, so
// remocal carries two dynamically linked programs, one exec apart.
const psqlBin = "/usr/bin/psql"

// deployPostgres runs the Postgres example (examples/kubernetes/postgres.yaml)
// and its orders app, and returns the fixture and the postgres Service's
// address; without Debian's psql there is nothing to test.
func deployPostgres(t *testing.T) (*fixture, string) {
	t.Helper()
	if _, err := os.Stat(psqlBin); err != nil {
		t.Skipf("needs Debian's psql (apt-get install postgresql-client): %v", err)
	}
	f := newFixture(t)
	f.applyExample("postgres")
	f.rollout("deployment/postgres")
	f.rollout("deployment/orders")
	return f, f.kubectl("get", "service", "postgres", "-o", "jsonpath={.spec.clusterIP}")
}

// The Postgres example: psql on the laptop, run as the orders app, with
// no connection flags at all. The pod's PGHOST=postgres is resolved
// through the pod's DNS search path, PGUSER and PGPASSWORD (from the
// Secret) log it in, and the connection leaves from the orders pod: the
// server sees the orders pod as its client. What one session writes, the
// next reads back.
func TestPostgresWithLocalPsql(t *testing.T) {
	f, clusterIP := deployPostgres(t)
	server := f.pods("app=postgres")[0]
	client := f.pods("app=orders")[0]

	// -X: no ~/.psqlrc of whoever runs the test; -At: bare rows.
	psql := func(commands ...string) procwatch.Result {
		t.Helper()
		argv := []string{psqlBin, "-X", "-At", "-v", "ON_ERROR_STOP=1"}
		for _, c := range commands {
			argv = append(argv, "-c", c)
		}
		r := f.exec("deploy/orders", []string{"--no-incoming"}, argv...)
		if r.Code != 0 {
			t.Fatalf("psql %q under remocal: exit %d", commands, r.Code)
		}
		return r
	}
	psql("create table orders (id int primary key, item text not null)",
		"insert into orders values (1, 'widget'), (2, 'gadget')")
	r := psql("select id || ':' || item from orders order by id",
		"select host(inet_server_addr()) || ' ' || host(inet_client_addr()) || ' ' || current_user",
		`\conninfo`)
	mustContain(t, "psql's output", r.Stdout,
		"1:widget\n2:gadget\n",
		server.ip+" "+client.ip+" postgres\n",
		`as user "postgres" on host "postgres" (address "`+clusterIP+`") at port "5432"`,
	)
}

// The same psql with the same variables, without remocal: the laptop can
// neither resolve the Service's name nor route to its address, so the
// test above got its rows through remocal.
func TestPostgresLaptopAloneFails(t *testing.T) {
	f, clusterIP := deployPostgres(t)
	b64 := f.kubectl("get", "secret", "postgres", "-o", "jsonpath={.data.password}")
	password, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("the Secret's password %q: %v", b64, err)
	}
	for host, want := range map[string]string{
		"postgres": `could not translate host name "postgres" to address`,
		clusterIP:  "Network is unreachable",
	} {
		cmd := f.local.Command(f.ctx(), psqlBin, "-X", "-c", "select 1")
		cmd.Env = append(os.Environ(), "PGHOST="+host, "PGUSER=postgres", "PGPASSWORD="+string(password), "PGCONNECT_TIMEOUT=10")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !strings.Contains(string(out), want) {
			t.Errorf("psql to %s on the laptop alone: want a failure saying %q, got %v:\n%s", host, want, err, out)
			continue
		}
		t.Logf("psql to %s on the laptop alone fails as it must:\n%s", host, out)
	}
}
