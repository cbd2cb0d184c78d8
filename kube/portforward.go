package kube

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// DialPod opens a port-forward stream to port on the pod's loopback, as
// `kubectl port-forward` does for one connection: WebSocket first (one
// message per SPDY frame: tunnel.go), SPDY if the apiserver does not
// upgrade. The stream carries the agent protocol.
func DialPod(env *Env, namespace, pod string, port int) (io.ReadWriteCloser, error) {
	url := env.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward").URL()
	transport, upgrader, err := spdy.RoundTripperFor(env.Config)
	if err != nil {
		return nil, err
	}
	spdyDialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, url)
	wsDialer, err := newTunnelDialer(url, env.Config)
	if err != nil {
		return nil, err
	}
	dialer := portforward.NewFallbackDialer(wsDialer, spdyDialer, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	conn, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return nil, fmt.Errorf("port-forward to pod %s/%s: %w", namespace, pod, err)
	}
	id := strconv.Itoa(int(requestID.Add(1)))
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(port))
	headers.Set(corev1.PortForwardRequestIDHeader, id)
	errStream, err := conn.CreateStream(headers)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("port-forward to pod %s/%s: %w", namespace, pod, err)
	}
	errStream.Close() // nothing to send on it
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(headers)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("port-forward to pod %s/%s: %w", namespace, pod, err)
	}
	s := &pfStream{conn: conn, data: data}
	go s.watchErrors(errStream)
	return s, nil
}

var requestID atomic.Int64

// pfStream is one forwarded connection. The kubelet reports failures (no
// listener on the port) on a separate error stream; they surface as the
// data stream's read error.
type pfStream struct {
	conn  httpstream.Connection
	data  httpstream.Stream
	errMu sync.Mutex
	err   error
	once  sync.Once
}

func (s *pfStream) watchErrors(errStream httpstream.Stream) {
	msg, err := io.ReadAll(errStream)
	if len(msg) > 0 {
		err = errors.New(string(msg))
	}
	if err != nil {
		s.errMu.Lock()
		s.err = fmt.Errorf("port-forward: %w", err)
		s.errMu.Unlock()
		s.data.Reset()
	}
}

func (s *pfStream) Read(p []byte) (int, error) {
	n, err := s.data.Read(p)
	if err != nil {
		s.errMu.Lock()
		if s.err != nil {
			err = s.err
		}
		s.errMu.Unlock()
	}
	return n, err
}

func (s *pfStream) Write(p []byte) (int, error) { return s.data.Write(p) }

func (s *pfStream) Close() error {
	s.once.Do(func() {
		s.data.Reset()
		s.conn.Close()
	})
	return nil
}
