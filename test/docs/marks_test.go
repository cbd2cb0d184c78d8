package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/remocal/remocal/test/cluster"
)

// TestDocBlocksAreRunOrMarked needs no cluster: every fenced block of the
// docs says what it is, every command is run by TestDocCommands or marked
// with why not, and every test a mark names as covering a command exists.
func TestDocBlocksAreRunOrMarked(t *testing.T) {
	root := moduleRoot(t)
	for _, d := range docs {
		blocks, err := parseDoc(root, d)
		if err != nil {
			t.Errorf("%s:\n%v", d, err)
		}
		for _, b := range blocks {
			for _, c := range b.cmds {
				switch c.how.kind {
				case "covered":
					if err := testExists(root, c.how.pkg, c.how.test); err != nil {
						t.Errorf("%s:%d: `%s` is marked covered by %s in %s: %v", d.file, c.line, c.key, c.how.test, c.how.pkg, err)
					}
				case "not run":
				default:
					t.Logf("%s:%d: %s: `%s`", d.file, c.line, c.how.kind, c.key)
				}
			}
		}
	}
}

// testExists says whether pkg (./path from root) has a test function name.
func testExists(root, pkg, name string) error {
	dir := filepath.Join(root, filepath.FromSlash(pkg))
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return os.ErrNotExist
	}
	re := regexp.MustCompile(`(?m)^func ` + regexp.QuoteMeta(name) + `\(\w+ \*testing\.T\)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if re.Match(b) {
			return nil
		}
	}
	return errNoSuchTest
}

type noSuchTest struct{}

func (noSuchTest) Error() string { return "no such test function in that package" }

var errNoSuchTest error = noSuchTest{}

// TestParseDoc pins the rules on small documents.
func TestParseDoc(t *testing.T) {
	cases := []struct {
		name, md string
		want     []string // kind:key of each command
		err      string
	}{
		{name: "run", md: "```sh\nmake build   # bin/remocal\n\n# a comment\nls \\\n  -l\n```\n",
			want: []string{"run:make build", "run:ls \\\n  -l"}},
		{name: "output blocks are not commands", md: "```console\n$ remocal ls\nTARGET\n```\n\n```jsonc\n{}\n```\n```yaml\na: b\n```\n"},
		{name: "no language", md: "```\nmake\n```\n", err: "without a language"},
		{name: "prompt in a command block", md: "```sh\n$ make\n```\n", err: "prompt"},
		{name: "whole block", md: "<!-- doc-test: not run: needs a registry -->\n\n```sh\nmake a\nmake b\n```\n",
			want: []string{"not run:make a", "not run:make b"}},
		{name: "per command", md: "<!-- doc-test\n`make demo`: covered by TestDemo in ./examples/demo\n`serve x`: until \"ready\", then Ctrl-C\n`psql`: prints \"1 row\"\n-->\n```bash\nmake demo # as root\nserve x\npsql\nmake build\n```\n",
			want: []string{"covered:make demo", "until:serve x", "prints:psql", "run:make build"}},
		{name: "stale mark", md: "<!-- doc-test\n`make tset`: not run: typo\n-->\n```sh\nmake test\n```\n", err: "no command of the block"},
		{name: "mark away from its block", md: "<!-- doc-test: not run: x -->\ntext\n```sh\nmake\n```\n", err: "not directly before"},
		{name: "unknown directive", md: "<!-- doc-test: skip -->\n```sh\nmake\n```\n", err: "unknown doc-test directive"},
		{name: "mark on output", md: "<!-- doc-test: not run: x -->\n```yaml\na: b\n```\n", err: "not commands"},
		{name: "section", md: "## A\n```sh\nmake a\n```\n## Examples\n```sh\nmake b\n```\n## C\n```\nx\n```\n",
			want: []string{"run:make b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "x.md"), []byte(tc.md), 0o644); err != nil {
				t.Fatal(err)
			}
			d := doc{file: "x.md"}
			if strings.HasPrefix(tc.md, "## A") {
				d.section = "Examples"
			}
			blocks, err := parseDoc(dir, d)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, b := range blocks {
				for _, c := range b.cmds {
					got = append(got, c.how.kind+":"+c.key)
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("commands %q, want %q", got, tc.want)
			}
		})
	}
}

func moduleRoot(t testing.TB) string {
	t.Helper()
	root, err := cluster.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}
