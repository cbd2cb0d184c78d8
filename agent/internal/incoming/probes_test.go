package incoming

import "testing"

func TestHeadIsProbe(t *testing.T) {
	for head, want := range map[string]bool{
		"GET /healthz HTTP/1.1\r\nHost: 10.0.0.5:8080\r\nUser-Agent: kube-probe/1.34\r\nAccept: */*": true,
		"GET /healthz HTTP/1.1\r\nuser-agent:kube-probe/1.29":                                        true,
		"GET /healthz HTTP/1.1\r\nUser-Agent: curl/8.0\r\nX-Note: kube-probe/1.34":                   false,
		"GET /kube-probe/ HTTP/1.1\r\nHost: x":                                                       false,
		"GET /healthz HTTP/1.1\r\nUser-Agent: Mozilla/5.0 kube-probe/1.34":                           false,
		"GET /healthz HTTP/1.1": false,
	} {
		if got := headIsProbe([]byte(head + "\r\n\r\n")); got != want {
			t.Errorf("%q: %v, want %v", head, got, want)
		}
	}
}
