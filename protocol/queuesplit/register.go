package queuesplit

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

var (
	// SchemeBuilder registers the custom resource's types; AddToScheme
	// adds them to a scheme (typed clients, the operator's informers).
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	AddToScheme   = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion, &RemocalQueueConsumer{}, &RemocalQueueConsumerList{})
	metav1.AddToGroupVersion(s, SchemeGroupVersion)
	return nil
}
