// A graph drawn with React Flow; positions come from the ELK layout worker, cached per shape
// (TanStack Query key `layout/<scope>/<shape hash>`). Only visible elements are rendered.

import { useQuery } from '@tanstack/react-query';
import { applyEdgeChanges, applyNodeChanges, Background, Controls, Handle, MiniMap, Position, ReactFlow, type Connection, type Edge, type Node, type NodeProps } from '@xyflow/react';
import { memo, useEffect, useMemo, useState } from 'react';
import { queryKeys } from '../api/queryKeys';
import { shortReason } from '../format/resources';
import { STATE_ORDER_DISPLAY, stateColor } from '../format/states';
import { GROUP_SIZE, TASK_SIZE } from '../graph/layout';
import { layoutInWorker } from '../graph/layoutClient';
import { shapeHash } from '../graph/model';

export interface BoxData extends Record<string, unknown> {
  title: string;
  subtitle?: string;
  state?: string;
  counts?: Record<string, number>;
  size?: number;
  change?: string;
  error?: string;
  /** why a ready task does not start (task), or `2 tasks wait: …` (group: waitingCount of them) */
  waiting?: string;
  waitingCount?: number;
  selected?: boolean;
  expandable?: boolean;
  expanded?: boolean;
  onToggle?: () => void;
}

export interface ViewNode {
  id: string;
  kind: 'task' | 'group';
  data: BoxData;
}
export interface ViewEdge {
  id: string;
  source: string;
  target: string;
  className?: string;
  animated?: boolean;
}

const Box = memo(function Box({ data }: NodeProps<Node<BoxData>>) {
  const color = data.state ? stateColor(data.state) : '#94a3b8';
  const classes = ['box', data.change ? `change-${data.change}` : '', data.error ? 'has-error' : '', data.selected ? 'selected' : '', data.state ? `state-${data.state}` : '', data.waiting ? 'parked' : ''];
  return (
    <div className={classes.join(' ')} style={{ borderColor: color }} data-testid={`node-${data.title}`} data-state={data.state ?? ''} title={data.waiting ? `waiting: ${data.waiting}` : undefined}>
      <Handle type="target" position={Position.Top} />
      <div className="box-title"><span className="dot" style={{ background: color }} />{data.title}</div>
      {data.waiting ? <div className="box-waiting" data-testid={`waiting-${data.title}`}>waiting: {shortReason(data.waiting)}</div> : data.subtitle && <div className="box-sub">{data.subtitle}</div>}
      {data.error && <div className="box-error">{data.error}</div>}
      <Handle type="source" position={Position.Bottom} />
    </div>
  );
});

const Group = memo(function Group({ data }: NodeProps<Node<BoxData>>) {
  const counts = data.counts ?? {};
  const size = data.size ?? 1;
  return (
    <div className={`box group ${data.selected ? 'selected' : ''} ${data.waiting ? 'parked' : ''}`} style={{ borderColor: stateColor(data.state ?? '') }} data-testid={`group-${data.title}`} data-state={data.state ?? ''} title={data.waiting}>
      <Handle type="target" position={Position.Top} />
      <div className="box-title">{data.title} <span className="muted">× {size}</span>
        {data.expandable && <button className="mini nodrag" onClick={(e) => { e.stopPropagation(); data.onToggle?.(); }}>{data.expanded ? 'collapse' : 'expand'}</button>}
      </div>
      <div className="progress small">
        {STATE_ORDER_DISPLAY.filter((s) => counts[s]).map((s) => <div key={s} style={{ width: `${(100 * counts[s]) / size}%`, background: stateColor(s) }} />)}
      </div>
      <div className="box-sub">{data.waiting && <span className="box-waiting" data-testid={`waiting-${data.title}`}>⚠ {data.waitingCount} waiting · </span>}{STATE_ORDER_DISPLAY.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(' · ')}</div>
      <Handle type="source" position={Position.Bottom} />
    </div>
  );
});

const nodeTypes = { task: Box, cluster: Group }; // not 'group': React Flow styles that name itself

export interface DagViewProps {
  scope: string;
  nodes: ViewNode[];
  edges: ViewEdge[];
  onNodeClick?: (id: string) => void;
  onPaneClick?: () => void;
  editable?: boolean;
  onConnect?: (c: Connection) => void;
  onEdgesDelete?: (edges: Edge[]) => void;
  onNodesDelete?: (nodes: Node[]) => void;
  positions?: Record<string, { x: number; y: number }>;
  onNodeDragStop?: (id: string, pos: { x: number; y: number }) => void;
}

export function DagView(props: DagViewProps) {
  const { scope, nodes, edges } = props;
  const shape = useMemo(() => shapeHash(nodes, edges), [nodes, edges]);
  const layout = useQuery({
    queryKey: queryKeys.layout(scope, shape),
    queryFn: () => layoutInWorker({ nodes: nodes.map((n) => ({ id: n.id, kind: n.kind })), edges }),
    staleTime: Infinity,
    gcTime: 30 * 60_000,
    placeholderData: (prev) => prev,
  });
  const rfNodes = useMemo<Node<BoxData>[]>(() => {
    const pos = layout.data ?? {};
    return nodes.map((n) => {
      const size = n.kind === 'group' ? GROUP_SIZE : TASK_SIZE;
      return {
        id: n.id,
        type: n.kind === 'group' ? 'cluster' : 'task',
        position: props.positions?.[n.id] ?? pos[n.id] ?? { x: 0, y: 0 },
        data: n.data,
        width: size.width,
        height: size.height,
        selected: !!n.data.selected,
      };
    });
  }, [nodes, layout.data, props.positions]);
  const rfEdges = useMemo<Edge[]>(() => edges.map((e) => ({ ...e, type: 'smoothstep' })), [edges]);
  // React Flow moves and selects through these; a new graph from the props replaces them.
  const [shownNodes, setShownNodes] = useState(rfNodes);
  const [shownEdges, setShownEdges] = useState(rfEdges);
  useEffect(() => setShownNodes(rfNodes), [rfNodes]);
  useEffect(() => setShownEdges(rfEdges), [rfEdges]);
  // A new shape waits for its own layout (the previous one would pile new nodes at 0,0).
  const laidOut = !!layout.data && nodes.every((n) => props.positions?.[n.id] || layout.data![n.id]);
  if (!laidOut) {
    return <div className="graph-loading">{layout.error ? `layout failed: ${String(layout.error)}` : `laying out ${nodes.length} nodes…`}</div>;
  }
  return (
    <div className="graph" data-testid="graph" data-nodes={nodes.length}>
      <ReactFlow
        key={`${scope}:${layout.data ? shape : 'none'}`}
        nodes={shownNodes}
        edges={shownEdges}
        onNodesChange={(changes) => setShownNodes((ns) => applyNodeChanges(changes, ns))}
        onEdgesChange={(changes) => setShownEdges((es) => applyEdgeChanges(changes, es))}
        nodeTypes={nodeTypes}
        fitView
        fitViewOptions={{ maxZoom: 1.2, minZoom: 0.1 }}
        minZoom={0.02}
        onlyRenderVisibleElements
        nodesDraggable={!!props.editable}
        nodesConnectable={!!props.editable}
        elementsSelectable
        deleteKeyCode={props.editable ? ['Backspace', 'Delete'] : null}
        onNodeClick={(_, n) => props.onNodeClick?.(n.id)}
        onPaneClick={() => props.onPaneClick?.()}
        onConnect={props.onConnect}
        onEdgesDelete={props.onEdgesDelete}
        onNodesDelete={props.onNodesDelete}
        onNodeDragStop={(_, n) => props.onNodeDragStop?.(n.id, n.position)}
        proOptions={{ hideAttribution: true }}
      >
        <Background gap={24} />
        <Controls showInteractive={false} />
        {nodes.length > 12 && nodes.length <= 400 && <MiniMap pannable zoomable nodeColor={(n) => stateColor(String((n.data as BoxData).state ?? ''))} />}
      </ReactFlow>
    </div>
  );
}
