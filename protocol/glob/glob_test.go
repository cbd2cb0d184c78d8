package glob

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"*", "", true},
		{"*", "ANYTHING", true},
		{"", "", true},
		{"", "A", false},
		{"DB_*", "DB_HOST", true},
		{"DB_*", "DB_", true},
		{"DB_*", "XDB_HOST", false},
		{"*_TOKEN", "API_TOKEN", true},
		{"*_TOKEN", "API_TOKENS", false},
		{"A?C", "ABC", true},
		{"A?C", "AC", false},
		{"A*B*C", "AxxBxxC", true},
		{"A*B*C", "AxxCxxB", false},
		{"a/b*", "a/bc", true}, // no path semantics: '/' is an ordinary character
		{"PATH", "PATH", true},
		{"PATH", "path", false}, // env names are case-sensitive on Linux
		{"**", "x", true},
		{"*", "*0", true}, // a literal star in the name is not a wildcard
		{"*a*a*a*a*b", strings.Repeat("a", 40), false},
	}
	for _, c := range cases {
		if got := Match(c.pattern, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

func TestSelector(t *testing.T) {
	s := NewSelector([]string{"DB_*;API_*", "HOME"}, []string{"*_SECRET"})
	for name, want := range map[string]bool{
		"DB_HOST":    true,
		"API_URL":    true,
		"HOME":       true,
		"DB_SECRET":  false,
		"PATH":       false,
		"API_SECRET": false,
	} {
		if got := s.Selects(name); got != want {
			t.Errorf("Selects(%q) = %v, want %v", name, got, want)
		}
	}
	all := NewSelector(nil, []string{"LD_PRELOAD"})
	if !all.Selects("PATH") || all.Selects("LD_PRELOAD") {
		t.Errorf("empty include must select everything but the excluded")
	}
}

func TestSplitDropsEmpty(t *testing.T) {
	got := Split([]string{" A ; ;B", ""})
	if strings.Join(got, ",") != "A,B" {
		t.Errorf("Split = %q", got)
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("A*B?C", "AxxByC")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got := Match(pattern, name)
		if !strings.ContainsAny(pattern, "*?") && got != (pattern == name) {
			t.Fatalf("literal pattern %q vs %q: got %v", pattern, name, got)
		}
		if Match("*", name) != true {
			t.Fatalf("* must match %q", name)
		}
	})
}
