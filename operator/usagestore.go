package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/remocal/remocal/protocol/operator"
)

// usageState is what the usage ConfigMap holds, as JSON under
// usageDataKey.
type usageState struct {
	Usage   []operator.Usage  `json:"usage"`
	Denials []operator.Denial `json:"denials"`
}

const (
	// UsageConfigMap, in the operator's namespace, keeps the usage report
	// across leaders and restarts. The chart's Role lets the operator get
	// and update only this ConfigMap.
	UsageConfigMap = "remocal-operator-usage"
	usageDataKey   = "usage.json"
	// usageFlushEvery is how often a replica writes what it recorded and
	// reads what the others wrote: the report lags a failover by that.
	usageFlushEvery = 15 * time.Second
	// maxUsageBytes keeps the ConfigMap well under Kubernetes' 1 MiB:
	// the oldest days go first.
	maxUsageBytes = 512 << 10
	flushAttempts = 5
)

// usageStore reads and writes the usage ConfigMap.
type usageStore struct {
	cs kubernetes.Interface
	ns string
}

// load returns the stored state and the ConfigMap (nil if there is none).
func (st *usageStore) load(ctx context.Context) (usageState, *corev1.ConfigMap, error) {
	cm, err := st.cs.CoreV1().ConfigMaps(st.ns).Get(ctx, UsageConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return usageState{}, nil, nil
	}
	if err != nil {
		return usageState{}, nil, fmt.Errorf("read the usage ConfigMap %s/%s: %w", st.ns, UsageConfigMap, err)
	}
	var state usageState
	data := cm.Data[usageDataKey]
	if len(data) > maxUsageBytes {
		// Not written by this operator: start afresh rather than decode
		// it all.
		return usageState{}, cm, nil
	}
	if data != "" {
		if err := json.Unmarshal([]byte(data), &state); err != nil {
			// Unreadable content is replaced, not fatal: it is a report.
			return usageState{}, cm, nil
		}
	}
	return state, cm, nil
}

// save writes state over cm (created when nil), dropping the oldest days
// beyond maxUsageBytes. A concurrent write fails with a conflict.
func (st *usageStore) save(ctx context.Context, cm *corev1.ConfigMap, state usageState) error {
	var data []byte
	for {
		var err error
		if data, err = json.Marshal(state); err != nil {
			return fmt.Errorf("encode the usage: %w", err)
		}
		if len(data) <= maxUsageBytes || len(state.Usage) == 0 {
			break
		}
		state.Usage = state.Usage[:len(state.Usage)*3/4] // newest first
	}
	if cm == nil {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: UsageConfigMap, Namespace: st.ns,
			Labels: map[string]string{"app.kubernetes.io/name": "remocal-operator", "app.kubernetes.io/component": "usage"}}}
		cm.Data = map[string]string{usageDataKey: string(data)}
		_, err := st.cs.CoreV1().ConfigMaps(st.ns).Create(ctx, cm, metav1.CreateOptions{})
		return err
	}
	cm = cm.DeepCopy()
	cm.Data = map[string]string{usageDataKey: string(data)}
	_, err := st.cs.CoreV1().ConfigMaps(st.ns).Update(ctx, cm, metav1.UpdateOptions{})
	return err
}

// flush adds what this replica recorded since the last flush to the
// ConfigMap and takes the result as the stored state. Records made during
// a failed write stay pending for the next flush.
func (u *usage) flush(ctx context.Context, st *usageStore) error {
	for range flushAttempts {
		state, cm, err := st.load(ctx)
		if err != nil {
			return err
		}
		u.mu.Lock()
		if len(u.pending) == 0 && len(u.pendingDenials) == 0 {
			u.stored = state
			u.mu.Unlock()
			return nil
		}
		merged := u.merged(state)
		pending, denials := u.pending, u.pendingDenials
		u.pending, u.pendingDenials = map[usageKey]*operator.Usage{}, nil
		u.stored = merged
		u.mu.Unlock()
		err = st.save(ctx, cm, merged)
		if err == nil {
			return nil
		}
		u.mu.Lock()
		u.putBack(pending, denials)
		u.stored = state
		u.mu.Unlock()
		if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("write the usage ConfigMap %s/%s: %w", st.ns, UsageConfigMap, err)
		}
	}
	return fmt.Errorf("write the usage ConfigMap %s/%s: it changed under %d attempts in a row", st.ns, UsageConfigMap, flushAttempts)
}

// putBack returns entries and denials taken for a write that failed.
// The caller holds mu.
func (u *usage) putBack(pending map[usageKey]*operator.Usage, denials []operator.Denial) {
	for k, e := range pending {
		if have := u.pending[k]; have != nil {
			have.Sessions += e.Sessions
			have.Seconds += e.Seconds
		} else {
			u.pending[k] = e
		}
	}
	u.pendingDenials = append(u.pendingDenials, denials...) // newer ones came in since
	if len(u.pendingDenials) > recentDenials {
		u.pendingDenials = u.pendingDenials[:recentDenials]
	}
}

// persist flushes at once, then every usageFlushEvery, and a last time
// when ctx ends; wait returns after that last flush.
func (u *usage) persist(ctx context.Context, st *usageStore, log *slog.Logger) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		failing := false
		report := func(err error) {
			// Said when storing starts or stops failing, not every
			// interval.
			switch {
			case err != nil && !failing:
				log.Warn("the usage report is kept in memory only", "error", err)
			case err == nil && failing:
				log.Info("the usage report is stored again", "configMap", UsageConfigMap)
			}
			failing = err != nil
		}
		t := time.NewTicker(usageFlushEvery)
		defer t.Stop()
		for {
			report(u.flush(ctx, st))
			select {
			case <-t.C:
			case <-ctx.Done():
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				err := u.flush(fctx, st)
				cancel()
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					log.Warn("the last usage records were not stored", "error", err)
				}
				return
			}
		}
	})
	return wg.Wait
}
