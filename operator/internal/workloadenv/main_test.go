package workloadenv

import (
	"testing"

	"github.com/remocal/remocal/test/cluster"
)

// The cluster tests (cluster_test.go) run against the harness cluster when
// REMOCAL_CLUSTER is set (docs/cluster.md) and skip otherwise; the rest
// need nothing.
func TestMain(m *testing.M) { cluster.Main(m) }
