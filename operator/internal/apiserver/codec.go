package apiserver

import (
	"k8s.io/apimachinery/pkg/runtime"
)

// withoutProtobuf is the API group's serializer: the codec factory's
// without its protobuf encoding, which the API's types do not implement.
// Offered, it is what clients preferring protobuf get (the namespace
// controller and the garbage collector ask "protobuf, then JSON"), and
// every answer to them fails: a namespace being deleted then stays
// Terminating while the operator is installed. Not offered, they get
// JSON, as from a CustomResourceDefinition's API.
type withoutProtobuf struct {
	runtime.NegotiatedSerializer
}

func (s withoutProtobuf) SupportedMediaTypes() []runtime.SerializerInfo {
	var out []runtime.SerializerInfo
	for _, info := range s.NegotiatedSerializer.SupportedMediaTypes() {
		if info.MediaType != runtime.ContentTypeProtobuf {
			out = append(out, info)
		}
	}
	return out
}
