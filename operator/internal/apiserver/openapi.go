package apiserver

import (
	"reflect"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	aggregatoropenapi "k8s.io/kube-aggregator/pkg/generated/openapi"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/remocal/remocal/protocol/operator"
)

// The generic server needs OpenAPI models of every type it serves (server-
// side apply's type converter is built from them, and kubectl explain reads
// them). The API's types are few and plain, so their schemas are derived
// from the Go types by reflection rather than by a code generator; the
// meta/v1 types (ObjectMeta, Time ...) come with kube-aggregator's
// generated definitions, which hold apimachinery's.

// openAPITypes are the API's top-level types.
var openAPITypes = []any{
	operator.Target{}, operator.TargetList{},
	operator.Session{}, operator.SessionList{},
	operator.OperatorStatus{}, operator.OperatorStatusList{},
}

// getOpenAPIDefinitions returns the definitions of the API's types and of
// the meta types.
func getOpenAPIDefinitions(ref common.ReferenceCallback) map[string]common.OpenAPIDefinition {
	defs := map[string]common.OpenAPIDefinition{}
	for name, d := range aggregatoropenapi.GetOpenAPIDefinitions(ref) {
		if strings.HasPrefix(name, "k8s.io/apimachinery/") {
			defs[name] = d
		}
	}
	b := schemaBuilder{ref: ref, defs: defs}
	for _, v := range openAPITypes {
		b.define(reflect.TypeOf(v))
	}
	return defs
}

func openAPIConfigs(scheme *runtime.Scheme, gc *genericapiserver.Config, version string) {
	namer := openapinamer.NewDefinitionNamer(scheme)
	gc.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(getOpenAPIDefinitions, namer)
	gc.OpenAPIConfig.Info.Title = "remocal operator"
	gc.OpenAPIConfig.Info.Version = version
	gc.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(getOpenAPIDefinitions, namer)
	gc.OpenAPIV3Config.Info.Title = "remocal operator"
	gc.OpenAPIV3Config.Info.Version = version
}

type schemaBuilder struct {
	ref  common.ReferenceCallback
	defs map[string]common.OpenAPIDefinition
}

// typeName is the Go name definitions are keyed by.
func typeName(t reflect.Type) string { return t.PkgPath() + "." + t.Name() }

// define adds the definition of struct type t (and of the structs it
// holds) and returns its name.
func (b *schemaBuilder) define(t reflect.Type) string {
	name := typeName(t)
	if _, ok := b.defs[name]; ok {
		return name
	}
	// Placeholder first: recursion through the same type stops here.
	b.defs[name] = common.OpenAPIDefinition{}
	s := spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}, Properties: map[string]spec.Schema{}}}
	var deps []string
	b.fields(t, &s, &deps)
	b.defs[name] = common.OpenAPIDefinition{Schema: s, Dependencies: deps}
	return name
}

// fields adds t's JSON fields to s, inlining embedded ",inline" structs.
func (b *schemaBuilder) fields(t reflect.Type, s *spec.Schema, deps *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && (name == "" || strings.Contains(opts, "inline")) && f.Type == reflect.TypeOf(metav1.TypeMeta{}) {
			b.fields(f.Type, s, deps)
			continue
		}
		if name == "" {
			name = f.Name
		}
		p := b.schemaOf(f.Type, deps)
		s.Properties[name] = p
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") && f.Type.Kind() != reflect.Pointer {
			s.Required = append(s.Required, name)
		}
	}
}

func (b *schemaBuilder) schemaOf(t reflect.Type, deps *[]string) spec.Schema {
	prim := func(typ, format string) spec.Schema {
		return spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{typ}, Format: format}}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return b.schemaOf(t.Elem(), deps)
	case reflect.String:
		return prim("string", "")
	case reflect.Bool:
		return prim("boolean", "")
	case reflect.Int, reflect.Int64, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Int32:
		return prim("integer", "int64")
	case reflect.Float64:
		return prim("number", "double")
	case reflect.Slice:
		item := b.schemaOf(t.Elem(), deps)
		return spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"array"}, Items: &spec.SchemaOrArray{Schema: &item}}}
	case reflect.Map:
		v := b.schemaOf(t.Elem(), deps)
		return spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}, AdditionalProperties: &spec.SchemaOrBool{Allows: true, Schema: &v}}}
	case reflect.Struct:
		name := typeName(t)
		if _, ok := b.defs[name]; !ok && !strings.HasPrefix(name, "k8s.io/") {
			b.define(t)
		}
		*deps = append(*deps, name)
		return spec.Schema{SchemaProps: spec.SchemaProps{Ref: b.ref(name)}}
	}
	panic("openapi: no schema for Go type " + t.String())
}
