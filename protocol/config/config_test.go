package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/remocal/remocal/protocol/wire"
)

var update = flag.Bool("update", false, "rewrite the .golden files in protocol/testdata/config")

const testdata = "../testdata/config"

// TestGolden parses every file in testdata: valid_*.json must parse and
// decode to the Config in its .golden file; invalid_*.json must fail with
// exactly the problems in its .golden file.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testdata, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in %s: %v", testdata, err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(data, name)
			var got []byte
			switch {
			case strings.HasPrefix(name, "valid_"):
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				got, _ = json.MarshalIndent(c, "", "  ")
				got = append(got, '\n')
			case strings.HasPrefix(name, "invalid_"):
				var cerr *Error
				if !errors.As(err, &cerr) {
					t.Fatalf("Parse returned %v (config %+v), want an *Error", err, c)
				}
				if c != nil {
					t.Errorf("Parse returned a config along with an error")
				}
				for _, p := range cerr.Problems {
					if strings.ContainsAny(p.Message, "\n\r") {
						t.Errorf("message of %s spans lines: %q", p.Path, p.Message)
					}
				}
				got = []byte(cerr.Error() + "\n")
			default:
				t.Fatalf("test file names start with valid_ or invalid_")
			}
			golden := strings.TrimSuffix(file, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs from %s (-want +got; go test -update rewrites it):\n%s", name, filepath.Base(golden), diff)
			}
		})
	}
}

// TestGoldenValidRoundTrip checks that what Parse returns survives being
// written back out, and that its defaults validate.
func TestGoldenValidRoundTrip(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testdata, "valid_*.json"))
	for _, file := range files {
		c, err := Load(file)
		if err != nil {
			t.Fatal(err)
		}
		checkRoundTrip(t, c)
	}
}

func checkRoundTrip(t *testing.T, c *Config) {
	t.Helper()
	for _, c := range []*Config{c, c.WithDefaults()} {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate of a parsed config: %v", err)
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Parse(out, "marshalled")
		if err != nil {
			t.Fatalf("Parse of marshalled config %s: %v", out, err)
		}
		if diff := cmp.Diff(c, back, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round trip changed the config (-before +after):\n%s", diff)
		}
	}
}

func TestProblemPositions(t *testing.T) {
	src := "{\n  // é comment\n  \"fs\": {\"mode\": \"x\"},\n\t\"bogus\": 1\n}"
	_, err := Parse([]byte(src), "f")
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("want *Error, got %v", err)
	}
	want := []Problem{
		{Path: "$.fs.mode", Line: 3, Column: 18, Message: `got "x", expected one of "read", "local"`},
		{Path: "$.bogus", Line: 4, Column: 2, Message: `unknown key "bogus"; expected one of "$schema", "agent", "env", "fs", "hostname", "kubernetes", "network", "operator", "processes", "queueSplits", "target"`},
	}
	if diff := cmp.Diff(want, cerr.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

func TestByteOrderMark(t *testing.T) {
	_, err := Parse([]byte("\xef\xbb\xbf{\"x\": 1}"), "bom")
	var cerr *Error
	if !errors.As(err, &cerr) || len(cerr.Problems) != 1 {
		t.Fatalf("want one problem, got %v", err)
	}
	if p := cerr.Problems[0]; p.Line != 1 || p.Column != 2 {
		t.Errorf("unknown key after a byte order mark at %d:%d, want 1:2", p.Line, p.Column)
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{Source: "f.json", Problems: []Problem{
		{Path: "$.a", Line: 2, Column: 3, Message: "m1"},
		{Path: "$.b", Message: "m2"},
		{Line: 1, Column: 1, Message: "m3"},
	}}
	want := "f.json:2:3: $.a: m1\nf.json: $.b: m2\nf.json:1:1: m3"
	if e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
}

func TestStripJSONC(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a": 1, }`, `{"a": 1  }`},
		{`[1, 2,]`, `[1, 2 ]`},
		{"[1, // c\n]", "[1      \n]"},
		{"[1, /* c */ ]", "[1          ]"},
		{`{"s": "// not /* a comment", }`, `{"s": "// not /* a comment"  }`},
		{`{"s": "quote \" // still string"}`, `{"s": "quote \" // still string"}`},
		{`[,]`, `[,]`},
		{`[1,,]`, `[1,,]`},
		{`{"a":,}`, `{"a":,}`},
		{"/*\n*/{}", "  \n  {}"},
	} {
		got, serr := stripJSONC([]byte(tc.in))
		if serr != nil {
			t.Errorf("stripJSONC(%q): %v", tc.in, serr.msg)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("stripJSONC(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if len(got) != len(tc.in) {
			t.Errorf("stripJSONC(%q) changed the length", tc.in)
		}
	}
}

func TestFind(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b", "c")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(dir string) string {
		t.Helper()
		p := filepath.Join(dir, Dir, File)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// Nothing anywhere below the temp dir. A config file above it (in /tmp
	// or /) would make the result depend on the machine, so only insist
	// on ErrNotFound when the search started in root escapes nothing.
	if p, err := Find(deep); err == nil {
		if strings.HasPrefix(p, root) {
			t.Fatalf("Find found %s in an empty tree", p)
		}
		t.Logf("a config file above the temp dir (%s) hides the not-found case", p)
	} else if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find in an empty tree: %v, want ErrNotFound", err)
	} else if !strings.Contains(err.Error(), deep) {
		t.Errorf("not-found error %q does not say where the search started", err)
	}

	top := write(root)
	if got, err := Find(deep); err != nil || got != top {
		t.Errorf("Find(deep) = %q, %v; want %q", got, err, top)
	}
	mid := write(filepath.Join(root, "a"))
	if got, err := Find(deep); err != nil || got != mid {
		t.Errorf("Find(deep) = %q, %v; want the nearest, %q", got, err, mid)
	}
	if got, err := Find(filepath.Join(root, "a")); err != nil || got != mid {
		t.Errorf("Find(a) = %q, %v; want its own file %q", got, err, mid)
	}
	// A .remocal directory without config.json, or a .remocal file, does
	// not stop the search.
	if err := os.MkdirAll(filepath.Join(deep, Dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "a", "b", Dir), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := Find(deep); err != nil || got != mid {
		t.Errorf("Find(deep) past empty .remocal = %q, %v; want %q", got, err, mid)
	}
	// Relative starting points work too.
	t.Chdir(deep)
	if got, err := Find("."); err != nil || got != mid {
		t.Errorf(`Find(".") = %q, %v; want %q`, got, err, mid)
	}
}

func TestFindNotFound(t *testing.T) {
	// Find's stopping condition, independent of what lies above t.TempDir:
	// the root directory's parent is itself.
	dir := t.TempDir()
	_, err := Find(dir)
	if err == nil {
		t.Skip("a .remocal/config.json above the temp dir")
	}
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

func TestWithDefaults(t *testing.T) {
	empty := &Config{}
	d := empty.WithDefaults()
	want := &Config{
		Kubernetes: Kubernetes{Transport: TransportAuto},
		Agent:      Agent{IdleTTL: Duration(time.Minute), StartupTimeout: Duration(time.Minute), ImagePullPolicy: "IfNotPresent"},
		Env:        Env{Include: []string{"*"}},
		FS:         FS{Mode: FSRead},
		Network:    Network{Incoming: Incoming{Mode: IncomingMirror, OnConflict: ConflictAbort}, Outgoing: Outgoing{TCP: ptr(true), UDP: ptr(true), IgnoreLocalhost: ptr(true)}, DNS: DNS{Enabled: ptr(true)}},
		Hostname:   ptr(true),
		Operator:   OperatorAuto,
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&Config{}, empty); diff != "" {
		t.Errorf("WithDefaults changed its receiver:\n%s", diff)
	}

	explicit := &Config{
		Target:     "pid/7",
		Kubernetes: Kubernetes{Transport: TransportPortForward},
		Agent:      Agent{Address: "tcp:127.0.0.1:1", IdleTTL: Duration(time.Second), StartupTimeout: Duration(time.Second), ImagePullPolicy: "Always"},
		Env:        Env{Include: []string{"A*"}, Exclude: []string{"B"}, Override: map[string]string{"C": "d"}},
		FS:         FS{Mode: FSLocal, Local: []string{"/x"}},
		Network:    Network{Incoming: Incoming{Mode: IncomingOff, Ports: []uint16{1}, PortMapping: map[uint16]uint16{1: 2}, OnConflict: ConflictContinue}, Outgoing: Outgoing{TCP: ptr(false), UDP: ptr(false), IgnoreLocalhost: ptr(false), Filter: Filter{Local: []string{"x"}}}, DNS: DNS{Enabled: ptr(false)}},
		Hostname:   ptr(false),
		Operator:   OperatorNever,
	}
	d = explicit.WithDefaults()
	if diff := cmp.Diff(explicit, d); diff != "" {
		t.Errorf("WithDefaults changed explicit values (-explicit +defaulted):\n%s", diff)
	}
	// The copy is deep: changing it leaves the original alone.
	*d.Hostname = true
	d.Env.Include[0] = "changed"
	d.Env.Override["C"] = "changed"
	d.Network.Incoming.PortMapping[1] = 9
	if *explicit.Hostname || explicit.Env.Include[0] != "A*" || explicit.Env.Override["C"] != "d" || explicit.Network.Incoming.PortMapping[1] != 2 {
		t.Errorf("WithDefaults shares state with its receiver")
	}
}

// TestSchemaDefaults keeps the defaults the schema states (which editors
// show) equal to those WithDefaults applies.
func TestSchemaDefaults(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(Schema(), &schema); err != nil {
		t.Fatal(err)
	}
	// Build a document that sets every key with a default to that default.
	doc := map[string]any{}
	var walk func(node map[string]any, into map[string]any)
	walk = func(node map[string]any, into map[string]any) {
		props, _ := node["properties"].(map[string]any)
		for name, p := range props {
			p := p.(map[string]any)
			if def, ok := p["default"]; ok {
				into[name] = def
			} else if p["type"] == "object" && p["properties"] != nil {
				sub := map[string]any{}
				walk(p, sub)
				if len(sub) > 0 {
					into[name] = sub
				}
			}
		}
	}
	walk(schema, doc)
	data, _ := json.Marshal(doc)
	c, err := Parse(data, "defaults")
	if err != nil {
		t.Fatalf("the schema's defaults do not parse: %v\n%s", err, data)
	}
	if diff := cmp.Diff((&Config{}).WithDefaults(), c.WithDefaults(), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("schema defaults differ from WithDefaults (-WithDefaults +schema):\n%s\nschema defaults: %s", diff, data)
	}
	for _, key := range []string{"idleTTL", "mode", "tcp", "udp", "ignoreLocalhost", "enabled", "hostname", "include"} {
		if !bytes.Contains(data, []byte(`"`+key+`":`)) {
			t.Errorf("the schema states no default for %q", key)
		}
	}
}

// TestSchemaMatchesStructs walks Config and the schema together so the two
// cannot drift: every struct field is a schema property of a matching type
// and every schema property is a struct field.
func TestSchemaMatchesStructs(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(Schema(), &schema); err != nil {
		t.Fatal(err)
	}
	defs := schema["$defs"].(map[string]any)
	resolve := func(node map[string]any) map[string]any {
		if ref, ok := node["$ref"].(string); ok {
			return defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		}
		return node
	}
	durationType := reflect.TypeFor[Duration]()
	var walk func(path string, typ reflect.Type, node map[string]any)
	walk = func(path string, typ reflect.Type, node map[string]any) {
		node = resolve(node)
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		wantType := map[reflect.Kind]string{
			reflect.Struct: "object", reflect.Map: "object", reflect.Slice: "array",
			reflect.String: "string", reflect.Bool: "boolean", reflect.Uint16: "integer", reflect.Int: "integer",
		}[typ.Kind()]
		if typ == durationType {
			wantType = "string"
		}
		if typ == reflect.TypeFor[OperatorMode]() {
			// "auto", true or false.
			if fmt.Sprint(node["type"]) != "[string boolean]" {
				t.Errorf("%s: schema type %v, want [string boolean]", path, node["type"])
			}
			return
		}
		if node["type"] != wantType {
			t.Errorf("%s: schema type %v, Go type %s", path, node["type"], typ)
		}
		switch typ.Kind() {
		case reflect.Struct:
			props, _ := node["properties"].(map[string]any)
			var fields []string
			for f := range typ.Fields() {
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name == "" || name == "-" {
					t.Errorf("%s: field %s has no json name", path, f.Name)
					continue
				}
				fields = append(fields, name)
				p, ok := props[name].(map[string]any)
				if !ok {
					t.Errorf("%s: field %s (json %q) is not in the schema", path, f.Name, name)
					continue
				}
				walk(keyPath(path, name), f.Type, p)
			}
			for name := range props {
				if !slices.Contains(fields, name) {
					t.Errorf("%s: schema property %q has no field in %s", path, name, typ)
				}
			}
		case reflect.Slice:
			walk(path+"[]", typ.Elem(), node["items"].(map[string]any))
		case reflect.Map:
			ap, ok := node["additionalProperties"].(map[string]any)
			if !ok {
				t.Errorf("%s: a map needs an additionalProperties schema", path)
				return
			}
			walk(path+"[*]", typ.Elem(), ap)
		}
	}
	walk("$", reflect.TypeFor[Config](), schema)
	// The HTTP filter is wire.HTTPFilter itself, so the wire protocol and
	// the file cannot disagree either.
	if reflect.TypeFor[Incoming]().Field(1).Type != reflect.TypeFor[*wire.HTTPFilter]() {
		t.Errorf("Incoming.HTTPFilter is not a *wire.HTTPFilter")
	}
}

// TestSchemaDocumented holds the schema to what editors need: a
// description on every property, closed objects, and the custom formats
// known to the validator.
func TestSchemaDocumented(t *testing.T) {
	if _, err := loadSchema(); err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	var schema map[string]any
	if err := json.Unmarshal(Schema(), &schema); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, node map[string]any)
	walk = func(path string, node map[string]any) {
		if node["type"] == "object" {
			if _, ok := node["additionalProperties"]; !ok {
				t.Errorf("%s: object without additionalProperties", path)
			}
			if ap, ok := node["additionalProperties"].(bool); ok && ap {
				t.Errorf("%s: additionalProperties is true", path)
			}
		}
		if props, ok := node["properties"].(map[string]any); ok {
			for name, p := range props {
				p := p.(map[string]any)
				if d, _ := p["description"].(string); len(d) < 10 {
					t.Errorf("%s: property %q has no useful description", path, name)
				}
				walk(keyPath(path, name), p)
			}
		}
		for _, key := range []string{"items", "additionalProperties", "propertyNames"} {
			if sub, ok := node[key].(map[string]any); ok {
				walk(path+"/"+key, sub)
			}
		}
		if enum, ok := node["enum"]; ok {
			if _, ok := node["default"]; !ok && path != "" {
				t.Errorf("%s: enum %v without a default", path, enum)
			}
		}
	}
	walk("$", schema)
	for name, def := range schema["$defs"].(map[string]any) {
		def := def.(map[string]any)
		if d, _ := def["description"].(string); d == "" {
			t.Errorf("$defs/%s has no description", name)
		}
		walk("$defs/"+name, def)
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	c := &Config{
		Target:  "pid/0",
		Agent:   Agent{IdleTTL: Duration(-time.Second)},
		FS:      FS{Mode: "write"},
		Network: Network{Incoming: Incoming{Ports: []uint16{80, 80}, HTTPFilter: &wire.HTTPFilter{}}, DNS: DNS{Filter: Filter{Remote: []string{"a"}, Local: []string{"b"}}}},
	}
	err := c.Validate()
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("Validate = %v, want *Error", err)
	}
	var paths []string
	for _, p := range cerr.Problems {
		paths = append(paths, p.Path)
		if p.Line != 0 {
			t.Errorf("%s: a Config built in code has no lines, got %d", p.Path, p.Line)
		}
	}
	want := []string{"$.agent.idleTTL", "$.fs.mode", "$.network.dns.filter", "$.network.incoming.httpFilter", "$.network.incoming.ports[1]", "$.target"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("problem paths (-want +got):\n%s\n%v", diff, err)
	}
	if err := (&Config{}).Validate(); err != nil {
		t.Errorf("empty config: %v", err)
	}
	// A flag may turn incoming traffic off for one run without the file's
	// HTTP filter becoming an error; in the file itself it is one.
	off := &Config{Network: Network{Incoming: Incoming{Mode: IncomingOff, HTTPFilter: &wire.HTTPFilter{Path: "/x"}}}}
	if err := off.Validate(); err != nil {
		t.Errorf("mode off with an HTTP filter: %v", err)
	}
	if _, err := Parse([]byte(`{"network": {"incoming": {"mode": "off", "httpFilter": {"path": "/x"}}}}`), "f"); err == nil {
		t.Errorf("Parse accepted an HTTP filter with mode off")
	}
}

func TestParseTarget(t *testing.T) {
	ok := map[string]Target{
		"pid/1":                          {Kind: TargetPID, PID: 1},
		"targetless":                     {Kind: TargetTargetless},
		"pod/web-0":                      {Kind: TargetPod, Name: "web-0"},
		"deployment/a.b-c/container/app": {Kind: TargetDeployment, Name: "a.b-c", Container: "app"},
		"service/api":                    {Kind: TargetService, Name: "api"},
		"cronjob/nightly":                {Kind: TargetCronJob, Name: "nightly"},
		"selector/app=api,tier=web":      {Kind: TargetSelector, Name: "app=api,tier=web"},
		"selector/app.kubernetes.io/name=api/container/app": {Kind: TargetSelector, Name: "app.kubernetes.io/name=api", Container: "app"},
	}
	for in, want := range ok {
		got, err := ParseTarget(in)
		if err != nil || got != want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("Target.String() = %q, want %q", got.String(), in)
		}
	}
	// kubectl's short and plural names read as the kind.
	for in, want := range map[string]string{"deploy/api": "deployment/api", "po/x/container/c": "pod/x/container/c",
		"svc/db": "service/db", "sts/s": "statefulset/s", "rs/r": "replicaset/r", "jobs/j": "job/j", "cj/c": "cronjob/c"} {
		if got, err := ParseTarget(in); err != nil || got.String() != want {
			t.Errorf("ParseTarget(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "pid", "pid/", "pid/0", "pid/-1", "pid/01", "pid/+1", "pid/1/container/x", "pid/99999999999999999999",
		"pod", "pod/", "pod/Web", "pod/-web", "pod/a..b", "pod/x/container", "pod/x/container/", "pod/x/sidecar/y", "pod/x/container/a.b",
		"service/1api", "daemonset/x", "targetless/x", "deploys/x", "selector/", "selector/app"} {
		if got, err := ParseTarget(in); err == nil {
			t.Errorf("ParseTarget(%q) = %+v, want an error", in, got)
		} else if !strings.HasPrefix(err.Error(), "got ") || !strings.Contains(err.Error(), "expected") && !strings.Contains(err.Error(), "must") && !strings.Contains(err.Error(), "may") {
			t.Errorf("ParseTarget(%q) error %q does not say what was expected", in, err)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	ok := []string{"10.0.0.0/8", "db.internal:5432", ":6379", "192.168.1.1", "192.168.1.1:80", "10.0.0.0/8:443",
		"::1", "fd00::/8", "[fd00::/8]:443", "[::1]:80", "example.com", "_sip._tcp.example.com.", "localhost"}
	for _, in := range ok {
		e, err := ParseEndpoint(in)
		if err != nil {
			t.Errorf("ParseEndpoint(%q): %v", in, err)
			continue
		}
		again, err := ParseEndpoint(e.String())
		if err != nil || again != e {
			t.Errorf("ParseEndpoint(%q).String() = %q, which parses to %+v, %v", in, e.String(), again, err)
		}
	}
	if e, _ := ParseEndpoint("db.internal:5432"); e.Host != "db.internal" || e.Port != 5432 || e.Prefix.IsValid() {
		t.Errorf("db.internal:5432 parsed as %+v", e)
	}
	if e, _ := ParseEndpoint(":6379"); e.Host != "" || e.Port != 6379 || e.Prefix.IsValid() {
		t.Errorf(":6379 parsed as %+v", e)
	}
	for _, in := range []string{"", ":", ":0", ":65536", "host:", "host:http", "10.0.0.1/8", "10.0.0.0/33", "300.1.1.1", "1.2.3",
		"[10.0.0.1]:80", "[::1", "[::1]x", "[::1]:", "fe80::1%eth0", "a..b", "-a.com", "bad_host!", "a b"} {
		if e, err := ParseEndpoint(in); err == nil {
			t.Errorf("ParseEndpoint(%q) = %+v, want an error", in, e)
		}
	}
}

func TestCheckDNSPattern(t *testing.T) {
	for _, in := range []string{"localhost", "*.corp.example.com", "a-b.c", "example.com."} {
		if err := checkDNSPattern(in); err != nil {
			t.Errorf("checkDNSPattern(%q): %v", in, err)
		}
	}
	for _, in := range []string{"", "*", "*.", "a.*.b", "10.0.0.1", "::1", "a..b", "-a"} {
		if err := checkDNSPattern(in); err == nil {
			t.Errorf("checkDNSPattern(%q) = nil, want an error", in)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(testdata, "*.json"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"a":{"b":[1,{"c":"\u00e9"}]},}`))
	f.Add([]byte("\xef\xbb\xbf/**/{}//"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz")
		if err != nil {
			var cerr *Error
			if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
				t.Fatalf("Parse error is not an *Error with problems: %#v", err)
			}
			for _, p := range cerr.Problems {
				if p.Message == "" || (p.Line == 0) != (p.Column == 0) || p.Line < 0 {
					t.Fatalf("malformed problem %+v", p)
				}
			}
			return
		}
		checkRoundTrip(t, c)
	})
}

// A Config changed by flags (--operator) is checked like a file.
func TestOperatorModeFlagAndValidate(t *testing.T) {
	for _, s := range []string{"auto", "true", "false"} {
		if m, err := ParseOperatorMode(s); err != nil || string(m) != s {
			t.Errorf("ParseOperatorMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := ParseOperatorMode("yes"); err == nil {
		t.Error(`ParseOperatorMode("yes") accepted`)
	}
	c := &Config{Operator: "maybe", Network: Network{Incoming: Incoming{OnConflict: "steal"}}}
	var cerr *Error
	if err := c.Validate(); !errors.As(err, &cerr) || len(cerr.Problems) != 2 ||
		cerr.Problems[0].Path != "$.network.incoming.onConflict" || cerr.Problems[1].Path != "$.operator" {
		t.Errorf("Validate = %v; want problems at $.network.incoming.onConflict and $.operator", err)
	}
	for m, want := range map[OperatorMode]string{OperatorAuto: `"auto"`, OperatorAlways: "true", OperatorNever: "false"} {
		b, err := json.Marshal(m)
		var back OperatorMode
		if err != nil || string(b) != want || json.Unmarshal(b, &back) != nil || back != m {
			t.Errorf("%q marshals to %s (%v) and back to %q", m, b, err, back)
		}
	}
}
