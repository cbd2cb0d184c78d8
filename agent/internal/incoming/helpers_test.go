package incoming

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

func mustRequest(t *testing.T, path, user string) *http.Request {
	t.Helper()
	raw := "GET " + path + " HTTP/1.1\r\nHost: app\r\nX-User: " + user + "\r\n\r\n"
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func bytesReader(b []byte) *strings.Reader { return strings.NewReader(string(b)) }
