package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memTopics is an in-memory ParentTopics.
type memTopics struct {
	mu   sync.Mutex
	m    map[string]string
	down bool
}

func (t *memTopics) Register(name, typ string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.down {
		return fmt.Errorf("creating kafka topic: %w", ErrUnavailable)
	}
	if old, ok := t.m[name]; ok && old != typ {
		return fmt.Errorf("%q is %s: %w", name, old, ErrConflict)
	}
	t.m[name] = typ
	return nil
}

func (t *memTopics) Delete(name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[name]; !ok {
		return fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	delete(t.m, name)
	return nil
}

func (t *memTopics) List() []ParentTopic {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []ParentTopic
	for n, typ := range t.m {
		out = append(out, ParentTopic{Name: n, Type: typ})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

const token = "s3cret-token"

func newTestServer(t *testing.T) (*httptest.Server, *memTopics) {
	t.Helper()
	pt := &memTopics{m: map[string]string{}}
	s, err := New(Config{Token: token}, Deps{ParentTopics: pt})
	require.NoError(t, err)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts, pt
}

func do(t *testing.T, ts *httptest.Server, method, path, body, tok string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := ts.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode != http.StatusNoContent {
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, string(b)
}

func TestAuth(t *testing.T) {
	ts, _ := newTestServer(t)
	tests := []struct {
		name, header string
		want         int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusUnauthorized},
		{"token prefix", "Bearer s3cret", http.StatusUnauthorized},
		{"basic auth", "Basic czNjcmV0LXRva2Vu", http.StatusUnauthorized},
		{"right token", "Bearer " + token, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", ts.URL+"/api/v1/parent-topics", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := ts.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, tt.want, resp.StatusCode)
			if tt.want == http.StatusUnauthorized {
				var e apiError
				require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
				assert.NotEmpty(t, e.Error)
				assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
			}
		})
	}
	code, _ := do(t, ts, "GET", "/healthz", "", "")
	assert.Equal(t, http.StatusOK, code, "healthz needs no token")
	code, _ = do(t, ts, "GET", "/api/v1/nothing", "", "")
	assert.Equal(t, http.StatusUnauthorized, code, "unknown API routes need the token too")
	code, _ = do(t, ts, "GET", "/api/v1/nothing", "", token)
	assert.Equal(t, http.StatusNotFound, code)
}

func TestNoTokenConfiguredRefusesAll(t *testing.T) {
	s, err := New(Config{}, Deps{ParentTopics: &memTopics{m: map[string]string{}}})
	require.NoError(t, err)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	code, _ := do(t, ts, "GET", "/api/v1/parent-topics", "", "")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, _ = do(t, ts, "GET", "/api/v1/parent-topics", "", " ")
	assert.Equal(t, http.StatusUnauthorized, code, "an empty bearer does not match an empty token")
}

func TestParentTopicsAPI(t *testing.T) {
	ts, pt := newTestServer(t)

	code, body := do(t, ts, "GET", "/api/v1/parent-topics", "", token)
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `[]`, body)

	code, body = do(t, ts, "POST", "/api/v1/parent-topics", `{"name":"meter"}`, token)
	assert.Equal(t, http.StatusCreated, code, body)
	assert.JSONEq(t, `{"name":"meter","type":"normal"}`, body)

	code, body = do(t, ts, "POST", "/api/v1/parent-topics", `{"name":"meter","type":"normal"}`, token)
	assert.Equal(t, http.StatusOK, code, "registered again: unchanged: %s", body)

	code, body = do(t, ts, "POST", "/api/v1/parent-topics", `{"name":"orderMsg2mq-meter"}`, token)
	assert.Equal(t, http.StatusCreated, code)
	assert.JSONEq(t, `{"name":"orderMsg2mq-meter","type":"ordered"}`, body, "ordered by its prefix")

	code, body = do(t, ts, "GET", "/api/v1/parent-topics", "", token)
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `[{"name":"meter","type":"normal"},{"name":"orderMsg2mq-meter","type":"ordered"}]`, body)

	code, body = do(t, ts, "DELETE", "/api/v1/parent-topics/meter", "", token)
	assert.Equal(t, http.StatusNoContent, code, body)
	code, body = do(t, ts, "DELETE", "/api/v1/parent-topics/meter", "", token)
	assert.Equal(t, http.StatusNotFound, code)
	assert.JSONEq(t, `{"error":"\"meter\": admin: not found","field":"name"}`, body)

	pt.m["taken"] = "ordered" // as if registered with another type elsewhere
	code, body = do(t, ts, "POST", "/api/v1/parent-topics", `{"name":"taken"}`, token)
	assert.Equal(t, http.StatusConflict, code, body)

	pt.down = true
	code, body = do(t, ts, "POST", "/api/v1/parent-topics", `{"name":"later"}`, token)
	assert.Equal(t, http.StatusServiceUnavailable, code, body)
	assert.Contains(t, body, "unavailable")
}

func TestCreateParentTopicValidation(t *testing.T) {
	ts, pt := newTestServer(t)
	tests := []struct {
		name, body, field string
	}{
		{"not JSON", `meter`, ""},
		{"two objects", `{"name":"a"}{"name":"b"}`, ""},
		{"unknown field", `{"name":"a","partitions":3}`, ""},
		{"name not a string", `{"name":3}`, "name"},
		{"no name", `{}`, "name"},
		{"two levels", `{"name":"a/b"}`, "name"},
		{"wildcard", `{"name":"#"}`, "name"},
		{"space", `{"name":"a b"}`, "name"},
		{"too long", `{"name":"` + strings.Repeat("a", 250) + `"}`, "name"},
		{"unknown type", `{"name":"a","type":"fifo"}`, "type"},
		{"ordered type, normal name", `{"name":"meter","type":"ordered"}`, "type"},
		{"normal type, ordered name", `{"name":"orderMsg2mq-x","type":"normal"}`, "type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, ts, "POST", "/api/v1/parent-topics", tt.body, token)
			assert.Equal(t, http.StatusBadRequest, code, body)
			var e apiError
			require.NoError(t, json.Unmarshal([]byte(body), &e))
			assert.Equal(t, tt.field, e.Field)
			assert.NotEmpty(t, e.Error)
		})
	}
	assert.Empty(t, pt.List(), "nothing registered")
}

func TestHealthz(t *testing.T) {
	var fail error
	s, err := New(Config{Token: token}, Deps{Health: func() error { return fail }})
	require.NoError(t, err)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	code, body := do(t, ts, "GET", "/healthz", "", "")
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"status":"ok"}`, body)
	fail = errors.New("store broken")
	code, _ = do(t, ts, "GET", "/healthz", "", "")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	code, body = do(t, ts, "GET", "/api/v1/parent-topics", "", token)
	assert.Equal(t, http.StatusServiceUnavailable, code, "routes without the bridge say it is off")
	assert.Contains(t, body, "-kafka.brokers")
}

func TestServerStartClose(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token}, Deps{})
	require.NoError(t, err)
	require.NoError(t, s.Start())
	resp, err := http.Get("http://" + s.Addr() + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, s.Close())
	_, err = http.Get("http://" + s.Addr() + "/healthz")
	assert.Error(t, err, "closed")
}

func TestConfigValidate(t *testing.T) {
	assert.NoError(t, (&Config{}).Validate())
	assert.Error(t, (&Config{Addr: "nohostport"}).Validate())
	assert.Error(t, (&Config{ReadTimeout: -1}).Validate())
}
