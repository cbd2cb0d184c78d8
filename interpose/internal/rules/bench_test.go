package rules

import "testing"

func BenchmarkPathsWhere(b *testing.B) {
	p, _ := NewPaths(PathOptions{RemoteByDefault: true, ExtraLocal: []string{"/root", "/work/project"}})
	paths := []string{"/etc/passwd", "/usr/lib/python3.11/json/__init__.py", "/app/config.yaml", "/root/.cache/x", "/etc/resolv.conf"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.Where(paths[i%len(paths)])
	}
}
