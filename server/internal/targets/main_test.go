package targets

import (
	"testing"

	"github.com/remocal/remocal/test/cluster"
)

// Tests of the Kubernetes provider run against the real test cluster when
// REMOCAL_CLUSTER is set (docs/cluster.md) and skip otherwise; the rest
// need nothing.
func TestMain(m *testing.M) { cluster.Main(m) }
