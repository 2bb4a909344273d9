package admin

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ParentTopic is a registered parent topic.
type ParentTopic struct {
	Name    string    `json:"name"`
	Type    string    `json:"type"`             // "normal" or "ordered"
	Created time.Time `json:"created,omitzero"` // when it was registered
}

// ParentTopics is the parent-topic registry (the Kafka bridge). Register
// of a registered name with its type succeeds without change; errors wrap
// ErrConflict (registered with another type), ErrNotFound (Delete of an
// unknown name), ErrUnavailable (Kafka unreachable) or are a *FieldError.
type ParentTopics interface {
	Register(name, typ string) error
	Delete(name string) error
	List() []ParentTopic
}

// Parent topic types and the name prefix that makes a topic ordered.
const (
	TypeNormal    = "normal"
	TypeOrdered   = "ordered"
	OrderedPrefix = "orderMsg2mq-"
)

// CheckParentTopic validates a registration request: name is one topic
// level of [0-9A-Za-z_-] (1..249 characters, Kafka's limit), and typ, when
// given, agrees with the name (orderMsg2mq- names are ordered, the others
// normal). It returns the effective type.
func CheckParentTopic(name, typ string) (string, *FieldError) {
	if name == "" {
		return "", &FieldError{"name", "required"}
	}
	if len(name) > 249 {
		return "", &FieldError{"name", fmt.Sprintf("%d characters: at most 249", len(name))}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return "", &FieldError{"name", fmt.Sprintf("character %q: a parent topic is one topic level of [0-9A-Za-z_-]", c)}
		}
	}
	want := TypeNormal
	if strings.HasPrefix(name, OrderedPrefix) {
		want = TypeOrdered
	}
	switch typ {
	case "":
		return want, nil
	case TypeNormal, TypeOrdered:
		if typ != want {
			why := "names starting with " + OrderedPrefix + " are ordered"
			if want == TypeNormal {
				why = "only names starting with " + OrderedPrefix + " are ordered"
			}
			return "", &FieldError{"type", fmt.Sprintf("%q conflicts with the name: %s", typ, why)}
		}
		return typ, nil
	default:
		return "", &FieldError{"type", fmt.Sprintf("%q: want normal or ordered", typ)}
	}
}

func (s *Server) listParentTopics(w http.ResponseWriter, r *http.Request) {
	list := s.deps.ParentTopics.List()
	if list == nil {
		list = []ParentTopic{}
	}
	writeJSON(w, http.StatusOK, list)
}

// createParentTopic registers a parent topic: 201 with the topic when
// new, 200 when it was registered already with that type.
func (s *Server) createParentTopic(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if !decode(w, r, &req) {
		return
	}
	typ, fe := CheckParentTopic(req.Name, req.Type)
	if fe != nil {
		writeError(w, http.StatusBadRequest, fe.Field, fe.Msg)
		return
	}
	status := http.StatusCreated
	if s.find(req.Name) != nil {
		status = http.StatusOK
	}
	if err := s.deps.ParentTopics.Register(req.Name, typ); err != nil {
		s.depError(w, r, err, "name")
		return
	}
	pt := s.find(req.Name)
	if pt == nil {
		pt = &ParentTopic{Name: req.Name, Type: typ}
	}
	s.log.Info().Str("topic", req.Name).Str("type", typ).Msg("admin: parent topic registered")
	writeJSON(w, status, pt)
}

func (s *Server) deleteParentTopic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.deps.ParentTopics.Delete(name); err != nil {
		s.depError(w, r, err, "name")
		return
	}
	s.log.Info().Str("topic", name).Msg("admin: parent topic deleted")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) find(name string) *ParentTopic {
	for _, pt := range s.deps.ParentTopics.List() {
		if pt.Name == name {
			return &pt
		}
	}
	return nil
}
