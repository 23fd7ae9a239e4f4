// Command kpin-node stands in for a kubelet (and a scheduler) in the test cluster: it registers
// one Node, binds every unscheduled pod to it, and reports what a kubelet would once the
// containers started: Jobs' pods Succeeded, other pods Running and Ready. A pod whose image names
// a `.invalid` registry stays Pending in ImagePullBackOff, as on a real node that cannot pull it.
// Pods being deleted are removed at once (a kubelet confirms the deletion after the containers
// stop), so that namespace deletion and the garbage collector finish as on a real cluster.
//
// No pod IP is reported: EndpointSlices stay empty and nothing ever connects to a pod, so the
// cluster sends no traffic beyond loopback (a webhook or APIService backed by a pod is
// unreachable, as it is when its pods are not ready).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the test cluster")
	nodeName := flag.String("node-name", "kpin-node", "name of the simulated node")
	flag.Parse()
	if err := run(*kubeconfig, *nodeName); err != nil {
		fmt.Fprintln(os.Stderr, "kpin-node:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, nodeName string) error {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	config.QPS, config.Burst = 200, 400
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := registerNode(ctx, client, nodeName); err != nil {
		return fmt.Errorf("registering node %s: %w", nodeName, err)
	}
	go heartbeat(ctx, client, nodeName)

	factory := informers.NewSharedInformerFactory(client, 0)
	pods := factory.Core().V1().Pods()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	_, _ = pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	fmt.Fprintf(os.Stderr, "kpin-node: node %s ready\n", nodeName)

	for range 4 {
		go func() {
			for {
				key, quit := queue.Get()
				if quit {
					return
				}
				err := syncPod(ctx, client, pods.Lister(), nodeName, key)
				if err != nil && !apierrors.IsNotFound(err) {
					queue.AddRateLimited(key)
				} else {
					queue.Forget(key)
				}
				queue.Done(key)
			}
		}()
	}
	<-ctx.Done()
	queue.ShutDown()
	return nil
}

func registerNode(ctx context.Context, client kubernetes.Interface, name string) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kpin-simulated",
			},
		},
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := reportNodeStatus(ctx, client, name); err != nil {
		return err
	}
	// The apiserver taints a new node not-ready; the node lifecycle controller (not run here:
	// this node never goes away) lifts the taint once the node reports Ready.
	current, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	taints := current.Spec.Taints[:0]
	for _, t := range current.Spec.Taints {
		if t.Key != corev1.TaintNodeNotReady {
			taints = append(taints, t)
		}
	}
	current.Spec.Taints = taints
	_, err = client.CoreV1().Nodes().Update(ctx, current, metav1.UpdateOptions{})
	return err
}

func reportNodeStatus(ctx context.Context, client kubernetes.Interface, name string) error {
	node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("64"),
		corev1.ResourceMemory:           resource.MustParse("256Gi"),
		corev1.ResourcePods:             resource.MustParse("10000"),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
	node.Status.Capacity = capacity
	node.Status.Allocatable = capacity
	node.Status.Phase = corev1.NodeRunning
	node.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "kpin-node simulates a kubelet", LastHeartbeatTime: now, LastTransitionTime: now,
	}}
	node.Status.NodeInfo = corev1.NodeSystemInfo{
		OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: "v1.36.3",
		ContainerRuntimeVersion: "kpin://simulated",
	}
	_, err = client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// heartbeat keeps the node's Ready condition fresh, as a kubelet does.
func heartbeat(ctx context.Context, client kubernetes.Interface, name string) {
	ticker := time.NewTicker(30 * time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if err := reportNodeStatus(ctx, client, name); err != nil && ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "kpin-node: heartbeat:", err)
			}
		}
	}
}

func syncPod(ctx context.Context, client kubernetes.Interface, lister corelisters.PodLister, nodeName, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := lister.Pods(namespace).Get(name)
	if err != nil {
		return err
	}
	pods := client.CoreV1().Pods(namespace)
	switch {
	case pod.DeletionTimestamp != nil:
		// The kubelet's part of a graceful deletion: the containers stopped, the pod goes.
		zero := int64(0)
		return pods.Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
	case pod.Spec.NodeName == "":
		binding := &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: nodeName},
		}
		return pods.Bind(ctx, binding, metav1.CreateOptions{})
	case pod.Spec.NodeName != nodeName || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return nil
	}
	status := startedStatus(pod)
	if equalStatus(pod.Status, status) {
		return nil
	}
	updated := pod.DeepCopy()
	updated.Status = status
	_, err = pods.UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	return err
}

// startedStatus is what a kubelet reports once it has done all it can for the pod.
func startedStatus(pod *corev1.Pod) corev1.PodStatus {
	now := metav1.Now()
	status := pod.Status.DeepCopy()
	if status.StartTime == nil {
		status.StartTime = &now
	}
	unpullable := ""
	for _, c := range pod.Spec.Containers {
		if unpullableImage(c.Image) {
			unpullable = c.Image
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if unpullableImage(c.Image) {
			unpullable = c.Image
		}
	}
	job := false
	for _, owner := range pod.OwnerReferences {
		if owner.Kind == "Job" {
			job = true
		}
	}
	containers := make([]corev1.ContainerStatus, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.Image, ContainerID: "kpin://" + string(pod.UID) + "/" + c.Name}
		switch {
		case unpullable != "":
			cs.ContainerID, cs.ImageID = "", ""
			cs.State.Waiting = &corev1.ContainerStateWaiting{
				Reason:  "ImagePullBackOff",
				Message: fmt.Sprintf("Back-off pulling image %q: the registry of %s cannot be reached", c.Image, unpullable),
			}
		case job:
			cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: *status.StartTime, FinishedAt: now}
		default:
			started := true
			cs.Started, cs.Ready = &started, true
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: *status.StartTime}
		}
		containers = append(containers, cs)
	}
	status.ContainerStatuses = containers
	ready := corev1.ConditionTrue
	switch {
	case unpullable != "":
		status.Phase = corev1.PodPending
		ready = corev1.ConditionFalse
	case job:
		status.Phase = corev1.PodSucceeded
		ready = corev1.ConditionFalse
	default:
		status.Phase = corev1.PodRunning
	}
	status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
		{Type: corev1.ContainersReady, Status: ready},
		{Type: corev1.PodReady, Status: ready},
	}
	for i := range status.Conditions {
		status.Conditions[i].LastTransitionTime = now
		for _, old := range pod.Status.Conditions {
			if old.Type == status.Conditions[i].Type && old.Status == status.Conditions[i].Status {
				status.Conditions[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	return *status
}

// equalStatus says whether the pod already shows what startedStatus would write, so that a
// resync writes nothing.
func equalStatus(old, want corev1.PodStatus) bool {
	if old.Phase != want.Phase || len(old.ContainerStatuses) != len(want.ContainerStatuses) || len(old.Conditions) != len(want.Conditions) {
		return false
	}
	for i := range want.Conditions {
		if old.Conditions[i].Type != want.Conditions[i].Type || old.Conditions[i].Status != want.Conditions[i].Status {
			return false
		}
	}
	for i := range want.ContainerStatuses {
		if old.ContainerStatuses[i].Ready != want.ContainerStatuses[i].Ready || old.ContainerStatuses[i].Image != want.ContainerStatuses[i].Image {
			return false
		}
	}
	return true
}

// unpullableImage: the image names a registry under the reserved `.invalid` top-level domain.
func unpullableImage(image string) bool {
	host, _, found := strings.Cut(image, "/")
	if !found {
		return false
	}
	host, _, _ = strings.Cut(host, ":")
	return strings.HasSuffix(host, ".invalid")
}
