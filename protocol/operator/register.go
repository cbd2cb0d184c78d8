package operator

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// SchemeBuilder registers the API's types; AddToScheme adds them
	// to a scheme, for servers and for typed clients alike.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	AddToScheme   = SchemeBuilder.AddToScheme
)

// Kinds of the API's objects.
const (
	KindTarget         = "Target"
	KindSession        = "Session"
	KindOperatorStatus = "OperatorStatus"
)

// Resource is a resource of the API as a GroupResource (for errors).
func Resource(resource string) schema.GroupResource {
	return schema.GroupResource{Group: Group, Resource: resource}
}

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion,
		&Target{}, &TargetList{},
		&Session{}, &SessionList{},
		&OperatorStatus{}, &OperatorStatusList{},
	)
	// The meta types every group serves (ListOptions, DeleteOptions,
	// Status, WatchEvent ...) under this group's version.
	metav1.AddToGroupVersion(s, SchemeGroupVersion)
	return nil
}
